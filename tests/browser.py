"""Headless Chromium for the tests that open a page in a real browser (the report, the docs site)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

CHROMIUM_HINT = "apt-get install -y --no-install-recommends chromium"


def chromium_path(why: str) -> str:
    """The Chromium executable; the test fails saying how to install it (``why``: what needs it)."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if path is None:
        pytest.fail(
            f"Chromium is missing: {why}. Install Debian's chromium: `apt-get install chromium` "
            f"(non-interactive: `{CHROMIUM_HINT}`), which gives /usr/bin/chromium.",
            pytrace=False,
        )
    return path


def run_chromium(
    chromium: str, tmp_path: Path, page: Path, *options: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Headless Chromium on ``page``, offline and in a fresh profile; killed after ``timeout`` s."""
    profile = tmp_path / "profile"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *options,
        page.resolve().as_uri(),
    ]
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(profile),
        "XDG_CACHE_HOME": str(profile),
    }
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the browser and every helper process it started
            process.communicate()
            pytest.fail(f"headless Chromium did not finish within {timeout} s: {command}")
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result
