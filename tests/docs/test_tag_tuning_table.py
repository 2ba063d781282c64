"""docs/multi-label.md's tuned tag embedding is the kept tune's: the macro mAP of onehot and of the
tag embedding at its default and tuned settings, the p of the tuned setting against onehot, and
the chosen values, read back from results/multi-label/debian-debtags-tuned/tuning.md (written by
`labelemb tune` from its runs). A section left behind when the tune ran again fails here."""

from __future__ import annotations

import re

from helpers.repo_paths import DOCS, ROOT
from helpers.report_checks import markdown_tables, rows_by_name

SECTION = "### The tag embedding tuned"
KEPT = ROOT / "results" / "multi-label" / "debian-debtags-tuned" / "tuning.md"


def kept_rows() -> dict[str, dict[str, str]]:
    assert KEPT.is_file(), f"{KEPT} is missing: keep the tune's records (results/multi-label/keep.sh)"
    return rows_by_name(markdown_tables(KEPT.read_text(encoding="utf-8"))[0])


def docs_section() -> str:
    text = (DOCS / "multi-label.md").read_text(encoding="utf-8")
    assert SECTION in text, f"docs/multi-label.md has no section '{SECTION}'"
    return text.split(SECTION, 1)[1].split("\n### ", 1)[0]


def docs_headline() -> dict[str, list[str]]:
    header, *rows = markdown_tables(docs_section())[0]
    assert header[:3] == ["method", "macro mAP %", "p"], header
    return {row[0]: row for row in rows}


def test_the_macro_map_figures_are_the_kept_tunes() -> None:
    kept, docs = kept_rows(), docs_headline()
    tuned = next(name for name in docs if name.startswith("label_embedding ("))
    assert docs["onehot"][1] == kept["onehot"]["tuned macro mAP %"]
    assert docs["label_embedding"][1] == kept["label_embedding"]["default macro mAP %"]
    assert docs[tuned][1] == kept["label_embedding"]["tuned macro mAP %"]
    assert docs[tuned][2] == kept["label_embedding"]["p vs tuned onehot"]


def test_the_chosen_values_are_the_kept_tunes() -> None:
    chosen = kept_rows()["label_embedding"]["chosen values"]
    section = re.sub(r"\s+", " ", docs_section())
    for name, value in re.findall(r"(\w+) ([\d.]+)", chosen):
        assert f"`{name}` {value}" in section, f"the section does not give {name} {value} ({chosen})"
