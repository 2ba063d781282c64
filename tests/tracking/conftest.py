"""Fixtures the tracker tests share: Trackio's local store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def trackio_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trackio's local store for the tracking tests (it reads TRACKIO_DIR once, when first imported:
    one store for every file of them)."""
    folder = tmp_path_factory.mktemp("trackio")
    previous = os.environ.get("TRACKIO_DIR")
    os.environ["TRACKIO_DIR"] = str(folder)
    if "trackio" in sys.modules:
        import trackio.utils

        assert trackio.utils.TRACKIO_DIR == folder, "trackio was imported before these tests chose its store"
    yield folder
    if previous is None:
        os.environ.pop("TRACKIO_DIR", None)
    else:
        os.environ["TRACKIO_DIR"] = previous
