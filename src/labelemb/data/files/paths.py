"""Where your files are: a split's file names, the folders a relative name is looked for in, the caches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..base import DataError
from ..registry import DataRequest

SPLITS = ("train", "dev", "test")


def find_file(name: str, request: DataRequest, what: str, key: str = "data.files") -> Path:
    """``name`` as given if absolute, else the first of: the config's folder, ``data.dir``,
    ``$LABELEMB_DATA`` that holds it; a DataError naming every place searched if none does
    (``key``: the config section that names the file)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        if path.exists():
            return path
        raise DataError(f"{what} {path} does not exist; fix the path in {key}")
    roots = [*request.search, request.dir, os.environ.get("LABELEMB_DATA")]
    places = [Path(root) / path for root in roots if root]
    for place in places:
        if place.exists():
            return place
    searched = ", ".join(str(place) for place in places) or str(path)
    raise DataError(
        f"{what} {name} not found (looked for {searched}); give its path relative to the config file, "
        "or pass its folder as --data-dir (data.dir) or $LABELEMB_DATA"
    )


def split_files(files: dict[str, Any], split: str) -> list[str]:
    given = files.get(split)
    if given is None:
        return []
    return [given] if isinstance(given, str) else list(given)


def data_name(files: dict[str, Any]) -> str:
    """What a run calls the data: a saved folder's or hub set's name, else the train file's folder."""
    if files.get("path"):
        return Path(str(files["path"])).name.split(".")[0] or "files"
    first = Path(str((split_files(files, "train") or ["files"])[0]))
    return first.resolve().parent.name or first.name.split(".")[0]


def cache_root(cache_dir: str | None) -> Path:
    """Where decoded images and Arrow files are kept: ``cache_dir`` (data.files.cache_dir),
    $LABELEMB_CACHE, or ``$XDG_CACHE_HOME/labelemb`` (``~/.cache/labelemb``)."""
    given = cache_dir or os.environ.get("LABELEMB_CACHE")
    if given:
        return Path(given).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelemb"
