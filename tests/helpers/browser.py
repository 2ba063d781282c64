"""Headless Chromium for the tests that open a page in a real browser (the report, the docs site)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

CHROMIUM_HINT = "apt-get install -y --no-install-recommends chromium"
#: The fonts the docs site and labelemb report's page are set in (text, code), from Debian's
#: fonts-liberation: a page's widths are measured in them, never in whatever font a machine falls
#: back to (Chromium only recommends them).
PAGE_FONTS = ("Liberation Sans", "Liberation Mono")
FONTS_HINT = "apt-get install -y --no-install-recommends fonts-liberation"

#: A script function for a probe: which of PAGE_FONTS the browser has (text set in a font measures
#: unlike both generic fallbacks only where the font is there).
FONTS_PROBE = """
function installedFonts() {
  const context = document.createElement("canvas").getContext("2d");
  const sample = "method 0.123 ± 4.56 AdaECE % wmWM";
  const has = (family) => ["monospace", "serif"].every((generic) => {
    context.font = `16px ${generic}`;
    const fallback = context.measureText(sample).width;
    context.font = `16px "${family}", ${generic}`;
    return context.measureText(sample).width !== fallback;
  });
  return Object.fromEntries(FAMILIES.map((family) => [family, has(family)]));
}
""".replace("FAMILIES", json.dumps(PAGE_FONTS))


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


def require_fonts(installed: dict[str, bool], what: str) -> None:
    """Fail, saying how to install them, if the browser lacks any of PAGE_FONTS (``installed``:
    what FONTS_PROBE's ``installedFonts()`` gave; ``what``: the page measured)."""
    missing = [family for family in PAGE_FONTS if not installed.get(family)]
    if missing:
        pytest.fail(
            f"the browser has no {' or '.join(missing)}, the fonts {what} is set in, so its widths "
            f"would be measured in a fallback font: `{FONTS_HINT}`",
            pytrace=False,
        )
