"""The records kept under results/ (the runs behind the docs' long tables) come from committed code:
no run, nor any part of one resumed under other code, nor its evaluation, was made by a ``.dirty``
build, whose numbers no commit records (``results/keep.sh`` refuses to keep one)."""

from __future__ import annotations

import re
import tarfile

from helpers.repo_paths import ROOT

#: The code version a record names, as summary.json, its trained_by parts and evaluation.json hold it.
RECORDED_CODE = re.compile(r'"labelemb": "([^"]*)"')


def recorded_codes(archive) -> dict[str, set[str]]:
    """Each JSON file of a records archive and the code versions it names."""
    codes: dict[str, set[str]] = {}
    with tarfile.open(archive) as records:
        for member in records.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                text = records.extractfile(member).read().decode("utf-8")
                codes[member.name] = set(RECORDED_CODE.findall(text))
    return codes


def test_every_kept_run_was_made_by_committed_code():
    archives = sorted(ROOT.glob("results/*/*/records.tar.xz"))
    assert len(archives) >= 20, "the kept records under results/ are missing: " + str(archives)
    named, dirty = 0, []
    for archive in archives:
        for name, codes in recorded_codes(archive).items():
            named += bool(codes)
            place = f"{archive.relative_to(ROOT)}: {name}"
            dirty += [f"{place} ({code})" for code in codes if code.endswith(".dirty")]
    assert named > 1000, "the kept summaries name no code version: is the pattern still right?"
    assert not dirty, "kept runs made by uncommitted code; train them again at a commit:\n" + "\n".join(dirty)
