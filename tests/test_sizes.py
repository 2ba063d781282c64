"""The project's limit on a source file's length (issue 61): every module under src/labelemb/ stays
under 400 lines, so that a file holds one idea a reader can take in; one that grows past it is
split along its seam."""

from __future__ import annotations

from helpers.repo_paths import SOURCE

#: The most lines a source file may have.
MAX_LINES = 400


def test_every_source_file_is_under_the_limit():
    long = {
        str(path.relative_to(SOURCE)): lines
        for path in sorted(SOURCE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) >= MAX_LINES
    }
    assert not long, f"split these along a seam (one idea per file), each under {MAX_LINES} lines: {long}"
