"""Fixtures the report tests share: the small comparison they report on, and the browser."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers.browser import chromium_path
from helpers.report_checks import METHODS, SMALL

from labelemb.cli import main


@pytest.fixture(scope="session")
def experiment(tmp_path_factory):
    """A real comparison directory: 2 methods x 2 seeds on digits, judged on the photo patches too,
    made once by `labelemb compare` on one thread (these tiny models only lose from a second)."""
    root = tmp_path_factory.mktemp("report")
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    args = ["--methods", ",".join(METHODS), "--seeds", "0-1", "--output-dir", str(root), "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["compare", "--config", str(config), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / SMALL["experiment"]


@pytest.fixture(scope="session")
def chromium() -> str:
    return chromium_path("the report tests open the page in a real headless browser")
