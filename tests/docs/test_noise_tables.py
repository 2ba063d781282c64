"""The figures of docs/noisy-labels.md's result tables are those of the kept comparisons under
results/noisy-labels/ (each experiment's comparison.md, made by `labelemb compare` from its runs):
every mean error and Welch p the docs give, each rank and each arrow, and the memorisation,
detection, calibration and conformal figures beside them, read back cell by cell. A
table left behind when its runs were trained again fails here."""

from __future__ import annotations

import re

import pytest
from helpers.repo_paths import DOCS, ROOT
from helpers.report_checks import markdown_tables, rows_by_name

PAGE = DOCS / "noisy-labels.md"
KEPT = ROOT / "results" / "noisy-labels"

#: A table of one experiment: (its section's heading, the table's place in the section) -> experiment.
ONE_EXPERIMENT = {
    ("NoisyAG-News: real crowd noise on text", 0): "noisyag-news",
    ("NoisyAG-News: real crowd noise on text", 1): "noisyag-news-minilm",
    ("Fashion-MNIST MLP, pair-flip 45 %", 0): "fashion-mnist-mlp-noise-pairflip45",
}
#: A table of settings, a column each: its section's heading -> the experiments' common prefix.
SETTINGS = {
    "Fashion-MNIST MLP across the settings": "fashion-mnist-mlp-noise-",
    "Fashion-MNIST MLP: every method on the noisy settings": "fashion-mnist-mlp-noise-",
    "MNIST MLP: right labels and Wei & Liu's settings": "mnist-mlp-noise-",
}
#: The other columns of a one-experiment table: (the comparison's table, its column).
FIGURES = {
    "final error %": ("noise", "final error %"),
    "memorised %, selected": ("noise", "memorised %, selected"),
    "AUROC of the loss %, final": ("noise", "AUROC of the loss %, final"),
    "ECE %": ("main", "ECE % (selected)"),
}
#: The docs' names of the settings the script names otherwise.
SETTING_NAMES = {
    "pair-flip 45 %": "pairflip45",
    "symmetric 20 %": "symmetric20",
    "symmetric 50 %": "symmetric50",
}


def page_tables(text: str) -> list[tuple[str, int, list[str], list[list[str]]]]:
    """Each Markdown table of a page: (the ``###`` heading above it, its place under that heading,
    header, rows)."""
    found = []
    for section in re.split(r"(?m)^### ", text):
        heading = section.split("\n", 1)[0].strip()
        found += [
            (heading, place, table[0], table[1:]) for place, table in enumerate(markdown_tables(section))
        ]
    return found


def kept(experiment: str, first: str = "seeds") -> dict[str, dict[str, str]]:
    """A table of a kept comparison.md, method -> column -> cell: the main one, or (``first``, its
    second column's name) another, such as the noisy-labels table ("clean-test error %")."""
    path = KEPT / experiment / "comparison.md"
    assert path.is_file(), f"{path} is missing: keep the experiment's records (results/noisy-labels/keep.sh)"
    found = [
        table
        for table in markdown_tables(path.read_text(encoding="utf-8"))
        if table[0][:2] == ["method", first]
    ]
    assert found, f"{path} has no table whose second column is '{first}'"
    return rows_by_name(found[0])


def mean_of(cell: str) -> float:
    return float(re.match(r"[-\d.]+", cell).group())


def setting_of(column: str) -> str:
    name = re.sub(r" \([\d.]+ %\)$", "", column)
    return SETTING_NAMES.get(name, name)


PAGE_TABLES = page_tables(PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("place", sorted(ONE_EXPERIMENT), ids=lambda place: ONE_EXPERIMENT[place])
def test_a_one_experiment_table_holds_its_comparisons_figures(place):
    table = [(header, rows) for heading, index, header, rows in PAGE_TABLES if (heading, index) == place]
    assert table, f"no table {place[1]} under '### {place[0]}' in {PAGE}"
    (header, rows), records = table[0], kept(ONE_EXPERIMENT[place])
    noise = kept(ONE_EXPERIMENT[place], "clean-test error %")
    assert {row[0] for row in rows} <= set(records), "methods the comparison does not hold"
    for row in rows:
        shown = {column: cell.strip("*") for column, cell in zip(header, row)}  # the best in bold
        record = records[row[0]]
        assert shown["clean-test error %"] == record["test error % (selected)"], row[0]
        assert shown["p vs onehot"] == record["p vs onehot (Welch)"], row[0]
        for column, (table, name) in FIGURES.items():
            if column in shown:
                given = {"main": record, "noise": noise[row[0]]}[table][name]
                # As the comparison gives it, or its mean to one decimal: rounded from the unrounded
                # mean, so within 0.05 of it, and of the comparison's two decimals 0.055.
                close = "±" not in shown[column] and abs(float(shown[column]) - mean_of(given)) <= 0.055
                assert shown[column] == given or close, (row[0], column)
        if "of the noise's cost won back" in shown and row[0] != "onehot":  # its share of onehot's cost
            onehot = mean_of(records["onehot"]["test error % (selected)"])
            right = kept(ONE_EXPERIMENT[place] + "-clean-labels")["onehot"]["test error % (selected)"]
            won = (onehot - mean_of(record["test error % (selected)"])) / (onehot - mean_of(right))
            assert shown["of the noise's cost won back"] == f"{100 * won:.0f} %", row[0]
        if "APS coverage % / size" in shown:
            coverage, size = (mean_of(noise[row[0]][name]) for name in ("APS coverage %", "APS set size"))
            assert shown["APS coverage % / size"] == f"{coverage:.2f} / {size:.2f}", row[0]


def settings_tables() -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables with a column per setting: the rank table and the Welch table of each section
    (a section's other tables have columns of other kinds)."""
    found = []
    for heading, _, header, rows in PAGE_TABLES:
        columns = header[1:-1] if header[-1] == "mean rank" else header[1:]
        prefix = SETTINGS.get(heading)
        if prefix and all((KEPT / (prefix + setting_of(column))).is_dir() for column in columns):
            found.append((prefix, header, rows))
    assert len(found) == 2 * len(SETTINGS), "each settings section has its rank and its Welch table"
    return found


@pytest.mark.parametrize("number", range(2 * len(SETTINGS)))
def test_a_settings_table_holds_each_settings_comparison(number):
    prefix, header, rows = settings_tables()[number]
    ranked = header[-1] == "mean rank"
    for column, setting in enumerate(header[1 : len(header) - ranked], start=1):
        records = kept(prefix + setting_of(setting))
        assert {row[0] for row in rows} <= set(records), f"methods without runs in {setting}"
        means = {row[0]: mean_of(records[row[0]]["test error % (selected)"]) for row in rows}
        onehot = mean_of(records["onehot"]["test error % (selected)"])
        for row in rows:
            cell, method, mean = row[column], row[0], means[row[0]]
            # The ranks and arrows come from the unrounded means: where two means print alike,
            # either order is theirs.
            if ranked:  # "13.36 (2)": the mean, its rank among the table's (ties share the better)
                shown, rank = re.fullmatch(r"([-\d.]+) \((\d+)\)", cell).groups()
                assert float(shown) == mean, (method, setting)
                lower = sum(other < mean for other in means.values())
                alike = sum(other == mean for other in means.values())
                assert lower < int(rank) <= lower + alike, (method, setting)
            else:  # "↓ 7.6e-05": Welch's p against onehot, the arrow saying which mean is lower
                arrow, p = cell.split(" ")
                assert p == records[method]["p vs onehot (Welch)"], (method, setting)
                expected = {"↓"} if mean < onehot else {"↑"} if mean > onehot else {"↓", "=", "↑"}
                assert arrow in expected, (method, setting)
