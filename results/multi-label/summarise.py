"""The tables of docs/multi-label.md's results, from the finished runs of each debtags experiment:
each method's test figures (mean +- sd over its seeds) on all packages and on the rest, and
whether its tag similarity recovers the facets (its learned one, or read off its predictions).

    python results/multi-label/summarise.py runs/debian-debtags runs/debian-debtags-ls-mass
    python results/multi-label/summarise.py runs/debian-debtags-minilm

Each method's p is against the onehot of its own experiment, or of the first one where its own has
none (label smoothing's mass-preserving form, an experiment of its own on the bag of words).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from labelemb.analysis.compare import welch_p
from labelemb.analysis.facet_pictures import facet_figures
from labelemb.analysis.representation import run_representation
from labelemb.metrics.figures import figure, in_units

FIGURES = ("map_macro", "map_micro", "f1_micro", "f1_macro", "lrap", "exact_match", "hamming")
#: Calibration per tag on test: raw, after one temperature and after a temperature per tag (dev's).
CALIBRATION = ("tag_ece", "tag_ece_scaled", "tag_ece_per_tag")
FACETS = ("facet_nearest", "facet_nearest_chance", "facet_pair_auroc")
#: The headline table's figures (summary key without ``selected_test_``), each with Welch's p
#: against onehot's seeds where it says so.
HEADLINE = (("map_macro", True), ("f1_micro", True), ("rest_map_macro", True), ("rest_f1_micro", True))
LINEAR_BASELINE = Path(__file__).with_name("linear-baseline.json")


def cell(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), fmt)} ± {format(spread, fmt)}"


def method_rows(experiment: Path) -> dict[str, list[Path]]:
    runs: dict[str, list[Path]] = {}
    for summary in sorted(experiment.glob("*/seed*/summary.json")):
        runs.setdefault(summary.parent.parent.name, []).append(summary.parent)
    return runs


def calibration_table(experiments: list[Path]) -> str:
    """Each method's marginal ECE on test: raw, after one temperature and after one per tag."""
    lines = ["| method | raw | one temperature | a temperature per tag |", "| --- | ---: | ---: | ---: |"]
    for experiment in experiments:
        for method, folders in by_onehot_first(experiment):
            cells = [cell(seed_values(folders, name), ".2f") for name in CALIBRATION]
            label = method_label(method, experiment, experiments[0])
            lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def variant(experiment: Path, first: Path) -> str:
    """The name of a variant experiment past the first's (``ls-mass`` for debian-debtags-ls-mass
    beside debian-debtags); "" for the first itself."""
    return "" if experiment.name == first.name else experiment.name.removeprefix(first.name + "-")


def method_label(method: str, experiment: Path, first: Path) -> str:
    """``method``, with its experiment's :func:`variant` where it has one: ``label_smoothing
    (ls-mass)``."""
    name = variant(experiment, first)
    return f"{method} ({name})" if name else method


def by_onehot_first(experiment: Path) -> list[tuple[str, list[Path]]]:
    """:func:`method_rows`, onehot (the baseline) first."""
    return sorted(method_rows(experiment).items(), key=lambda item: item[0] != "onehot")


def seed_values(folders: list[Path], key: str) -> list[float]:
    """``selected_test_<key>`` of each run that recorded it."""
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
    return [s[f"selected_test_{key}"] for s in summaries if s.get(f"selected_test_{key}") is not None]


def headline_table(experiments: list[Path]) -> str:
    """Each method's headline figures with Welch's p against onehot, below the linear line (a
    method with other than onehot's number of seeds says how many it has)."""
    heads = []
    for key, tested in HEADLINE:
        label = figure(key.removeprefix("rest_")).label
        heads += [f"rest {label}" if key.startswith("rest_") else label] + (["p"] if tested else [])
    lines = [f"| method | {' | '.join(heads)} |", "| --- |" + " ---: |" * len(heads)]
    linear = json.loads(LINEAR_BASELINE.read_text())
    figures = {**linear["test"], **linear["test_rest"]}
    cells = [[f"{figures[f'test_{key}']:.2f}"] + (["-"] if tested else []) for key, tested in HEADLINE]
    lines.append(f"| TF-IDF linear SVM | {' | '.join(c for pair in cells for c in pair)} |")
    first_base = method_rows(experiments[0]).get("onehot", [])
    for experiment in experiments:
        base = method_rows(experiment).get("onehot", first_base)  # a variant's experiment: the first's
        for method, folders in by_onehot_first(experiment):
            row = []
            for key, tested in HEADLINE:
                values = seed_values(folders, key)
                row.append(cell(values, ".2f"))
                if tested:
                    p = welch_p(values, seed_values(base, key)) if method != "onehot" else None
                    row.append("-" if p is None else f"{p:.2g}")
            label = method_label(method, experiment, experiments[0])
            label += "" if len(folders) == len(base) else f", {len(folders)} seeds"
            lines.append(f"| {label} | {' | '.join(row)} |")
    return "\n".join(lines)


def shorter(fmt: str) -> str:
    """A fixed-point format with one decimal fewer (``.2f`` -> ``.1f``): a column a method, up to
    seven of them, must fit the docs' column; the headline table keeps every decimal."""
    return f".{int(fmt[1:-1]) - 1}f"


def transposed_table(experiments: list[Path], prefix: str) -> str:
    """Every figure of :data:`FIGURES` (a row each) for the linear line and each method (a column
    each), on all packages (``prefix`` "") or the rest ("rest_"), one decimal fewer than declared."""
    linear = json.loads(LINEAR_BASELINE.read_text())
    linear_figures = linear["test_rest" if prefix else "test"]
    # A variant experiment's column is headed by its name alone (ls-mass): narrow, as a method's.
    columns = {"linear SVM": None} | {
        variant(experiment, experiments[0]) or method: folders
        for experiment in experiments
        for method, folders in by_onehot_first(experiment)
    }
    lines = [f"| figure | {' | '.join(columns)} |", "| --- |" + " ---: |" * len(columns)]
    for name in FIGURES:
        cells = [
            f"{linear_figures[f'test_{prefix}{name}']:{shorter(figure(name).fmt)}}"
            if folders is None
            else cell(seed_values(folders, prefix + name), shorter(figure(name).fmt))
            for folders in columns.values()
        ]
        lines.append(f"| {figure(name).label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def facets_table(experiments: list[Path]) -> str:
    heads = [figure(name).label for name in FACETS]
    lines = [f"| method | representation | {' | '.join(heads)} |", "| --- | --- |" + " ---: |" * len(FACETS)]
    for experiment in experiments:
        for method, folders in by_onehot_first(experiment):
            per_seed = []
            source = ""
            for folder in folders:
                representation = run_representation(folder)
                source = json.loads((folder / "summary.json").read_text()).get("representation_source", "")
                per_seed.append(in_units(facet_figures(representation)))
            cells = [cell([figures[name] for figures in per_seed], ".1f") for name in FACETS]
            label = method_label(method, experiment, experiments[0])
            lines.append(f"| {label} | {source} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    experiments = [Path(folder) for folder in sys.argv[1:]] or [Path("runs/debian-debtags")]
    print("Headline, p against onehot (Welch):\n\n" + headline_table(experiments))
    print("\nAll test packages:\n\n" + transposed_table(experiments, ""))
    print(
        "\nThe rest (packages with a tag beyond the library tags):\n\n"
        + transposed_table(experiments, "rest_")
    )
    print("\nCalibration per tag (marginal ECE %), all test packages:\n\n" + calibration_table(experiments))
    print("\nThe facets in each method's tag similarity:\n\n" + facets_table(experiments))


if __name__ == "__main__":
    main()
