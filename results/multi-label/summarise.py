"""The tables of docs/multi-label.md's results, from the finished runs of each debtags experiment:
each method's test figures (mean +- sd over its seeds) on all packages and on the rest, and
whether its tag similarity recovers the facets (its learned one, or read off its predictions).

    python results/multi-label/summarise.py runs/debian-debtags runs/debian-debtags-ls-mass
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from labelemb.analysis.facets import facet_agreement
from labelemb.analysis.representation import run_representation
from labelemb.analysis.similarity import label_similarity
from labelemb.metrics.figures import figure, in_units

FIGURES = ("map_macro", "map_micro", "f1_micro", "f1_macro", "lrap", "exact_match", "hamming")
#: Calibration per tag on test: raw, after one temperature and after a temperature per tag (dev's).
CALIBRATION = ("tag_ece", "tag_ece_scaled", "tag_ece_per_tag")
FACETS = ("facet_nearest", "facet_nearest_chance", "facet_pair_auroc")


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


def figures_table(experiments: list[Path], prefix: str, names: tuple[str, ...] = FIGURES) -> str:
    heads = [figure(name).label if name != "tag_ece_scaled" else "tag ECE % one T" for name in names]
    lines = [f"| method | seeds | {' | '.join(heads)} |", "| --- | ---: |" + " ---: |" * len(names)]
    for experiment in experiments:
        for method, folders in method_rows(experiment).items():
            summaries = [json.loads((folder / "summary.json").read_text()) for folder in folders]
            cells = []
            for name in names:
                values = [
                    s[f"selected_test_{prefix}{name}"]
                    for s in summaries
                    if s.get(f"selected_test_{prefix}{name}") is not None
                ]
                cells.append(cell(values, figure(name.removesuffix("_scaled")).fmt))
            label = method if experiment.name == experiments[0].name else f"{method} ({experiment.name})"
            lines.append(f"| {label} | {len(summaries)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def facets_table(experiments: list[Path]) -> str:
    heads = [figure(name).label for name in FACETS]
    lines = [f"| method | representation | {' | '.join(heads)} |", "| --- | --- |" + " ---: |" * len(FACETS)]
    for experiment in experiments:
        for method, folders in method_rows(experiment).items():
            per_seed = []
            source = ""
            for folder in folders:
                representation = run_representation(folder)
                source = json.loads((folder / "summary.json").read_text()).get("representation_source", "")
                per_seed.append(
                    in_units(
                        facet_agreement(label_similarity(representation.matrix), representation.class_names)
                    )
                )
            cells = [cell([figures[name] for figures in per_seed], ".1f") for name in FACETS]
            lines.append(f"| {method} | {source} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    experiments = [Path(folder) for folder in sys.argv[1:]] or [Path("runs/debian-debtags")]
    print("All test packages:\n\n" + figures_table(experiments, ""))
    print(
        "\nThe rest (packages with a tag beyond the library tags):\n\n" + figures_table(experiments, "rest_")
    )
    print("\nCalibration per tag, all test packages:\n\n" + figures_table(experiments, "", CALIBRATION))
    print("\nThe facets in each method's tag similarity:\n\n" + facets_table(experiments))


if __name__ == "__main__":
    main()
