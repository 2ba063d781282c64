"""build_once: the locked build every cache file shares (the feature cache's, the corrupted sets')."""

from __future__ import annotations

import pytest

from labelemb.data.cache_files import build_once, write_atomically


def test_a_cache_found_under_the_lock_is_read_and_not_built(tmp_path):
    path = tmp_path / "made" / "cache.bin"
    built = []
    found, read = build_once(
        path, "test cache", lambda: "built meanwhile", lambda: built.append(1), progress=False
    )
    assert (found, read, built) == ("built meanwhile", True, [])
    assert path.parent.is_dir()  # its folder is made before the lock beside the file is taken


def test_a_missing_cache_is_built_after_the_leftovers_of_killed_builds_are_removed(tmp_path):
    path = tmp_path / "cache.bin"
    leftover = tmp_path / f".{path.name}.999.abcd.tmp"
    leftover.write_bytes(b"half")

    def build() -> bytes:
        assert not leftover.exists()
        write_atomically(path, "test cache", lambda handle: handle.write(b"whole"))
        return b"whole"

    assert build_once(path, "test cache", lambda: None, build, progress=False) == (b"whole", False)
    assert path.read_bytes() == b"whole"


def test_a_failed_build_leaves_neither_the_cache_nor_its_lock(tmp_path):
    path = tmp_path / "cache.bin"

    def build() -> None:
        raise ValueError("no features")

    with pytest.raises(ValueError, match="no features"):
        build_once(path, "test cache", lambda: None, build, progress=False)
    assert list(tmp_path.iterdir()) == []
