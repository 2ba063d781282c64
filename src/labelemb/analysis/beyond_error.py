"""Beyond error: does a method know when it is wrong? The comparison's tables of each run's
``evaluation.json`` (:mod:`labelemb.evaluation.run`): selective classification and conformal
sets on the test split, and the detection of each out-of-distribution set.

A run without the record (trained before runs were evaluated, or not evaluated yet) gives "-",
never a figure computed here: ``labelemb evaluate`` adds it from the run's saved weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..metrics.figures import OOD_SCORES, Figure, added_figures, family, figure
from .tables import mean_std

#: The test figures the rows carry: evaluation.json key -> (row statistic, Welch p against the
#: baseline). Each one's head and unit are its declaration's (:mod:`labelemb.metrics.figures`):
#: percent in the record and in the tables (the set size is a count of classes).
TEST_FIGURES = {
    "selective_msp_aurc": ("aurc", True),
    "selective_msp_augrc": ("augrc", False),
    "selective_msp_risk_at_80": ("risk_at_80", False),
    "selective_msp_coverage_at_5": ("coverage_at_5", False),
    "selective_msp_scaled_aurc": ("aurc_scaled", False),
    "selective_pnorm_aurc": ("aurc_pnorm", False),
    "conformal_aps_coverage": ("aps_coverage", False),
    "conformal_aps_set_size": ("aps_size", False),
}
#: The scores whose SCOD figures the rows carry (those of labelemb.metrics.ood.SCORES).
SCOD_SCORES = tuple(OOD_SCORES)
#: Each out-of-distribution set's figures: record key -> (row statistic, Welch p): four detection
#: figures, then every declared SCOD figure (the test split and the set ranked together, an
#: accepted OOD input an error), the MSP's AURC with a p.
OOD_FIGURES = {
    "ood_msp_auroc": ("msp_auroc", False),
    "ood_energy_auroc": ("energy_auroc", True),
    "ood_msp_fpr95": ("msp_fpr95", False),
    "ood_energy_fpr95": ("energy_fpr95", False),
    **{scod.name: (scod.name, scod.name == "scod_msp_aurc") for scod in family("scod")},
}


def figure_stem(name: str) -> str:
    """A test figure's row key stem: ``beyond_aurc``."""
    return f"beyond_{name}"


def ood_stem(set_name: str, name: str) -> str:
    """An OOD figure's row key stem: ``ood_mnist_energy_auroc``."""
    return f"ood_{set_name}_{name}"


def ood_sets(evaluations: list[dict[str, Any] | None]) -> list[str]:
    """The OOD sets every evaluated run of a comparison has, in the order the first names them."""
    held = [set(e.get("ood", {})) for e in evaluations if e is not None]
    first = next((list(e.get("ood", {})) for e in evaluations if e is not None), [])
    return [name for name in first if all(name in names for names in held)]


def row_ood_sets(rows: list[dict[str, Any]]) -> list[str]:
    """The OOD sets a comparison's rows have statistics of (their ``ood_<set>_energy_auroc_mean``)."""
    head, tail = "ood_", f"_{OOD_FIGURES['ood_energy_auroc'][0]}_mean"
    return [
        key[len(head) : -len(tail)]
        for key in (rows[0] if rows else {})
        if key.startswith(head) and key.endswith(tail)
    ]


def beyond_error_statistics(
    evaluations: list[dict[str, Any] | None],
    base: list[dict[str, Any] | None] | None,
    welch_p: Callable[[list[float], list[float]], float | None],
    sets: list[str],
) -> dict[str, Any]:
    """A method's row statistics of its runs' ``evaluations``: mean, std and (where the table gives
    one) Welch's p against ``base`` (the baseline's runs; None for the baseline itself)."""
    row: dict[str, Any] = {}
    for key, (name, with_p) in TEST_FIGURES.items():
        values = [None if e is None else e.get("test", {}).get(key) for e in evaluations]
        against = None if base is None or not with_p else [b and b.get("test", {}).get(key) for b in base]
        row.update(_statistics(figure_stem(name), values, against, welch_p, figure(key)))
    for added in added_figures():  # an extension's figures, each a column of its own
        values = [None if e is None else e.get("test", {}).get(added.name) for e in evaluations]
        row.update(_statistics(figure_stem(added.name), values, None, welch_p, added))
    for set_name in sets:
        for key, (name, with_p) in OOD_FIGURES.items():
            values = [_ood_figure(e, set_name, key) for e in evaluations]
            against = None if base is None or not with_p else [_ood_figure(b, set_name, key) for b in base]
            row.update(_statistics(ood_stem(set_name, name), values, against, welch_p, figure(key)))
    return row


def _ood_figure(evaluation: dict[str, Any] | None, set_name: str, key: str) -> float | None:
    if evaluation is None:
        return None
    return evaluation.get("ood", {}).get(set_name, {}).get("figures", {}).get(key)


def _statistics(
    stem: str,
    values: list[float | None],
    base: list[float | None] | None,
    welch_p: Callable[[list[float], list[float]], float | None],
    declared: Figure,
) -> dict[str, Any]:
    """``<stem>_mean``, ``_std`` (in ``declared``'s unit) and ``_p_value``; Nones where a run
    lacks it."""
    out: dict[str, Any] = {f"{stem}_mean": None, f"{stem}_std": None, f"{stem}_p_value": None}
    if not values or any(v is None for v in values):
        return out
    held = [float(v) for v in values]  # type: ignore[arg-type]
    out[f"{stem}_mean"], out[f"{stem}_std"] = mean_std(held)
    if base and all(b is not None for b in base):
        out[f"{stem}_p_value"] = welch_p(held, [float(b) for b in base])  # type: ignore[arg-type]
    return out


def _cell(row: dict[str, Any], stem: str, fmt: str = ".2f") -> str:
    mean, std = row.get(f"{stem}_mean"), row.get(f"{stem}_std")
    return "-" if mean is None else f"{mean:{fmt}} ± {std:{fmt}}"


def _p_cell(row: dict[str, Any], stem: str) -> str:
    p = row.get(f"{stem}_p_value")
    return "-" if p is None else f"{p:.2g}"


@dataclass
class TableBlock:
    """One of the beyond-error tables: ``intro`` (the line above it), ``markdown`` (the table
    alone) and ``notes`` (the lines under it: what its figures are, how the methods rank)."""

    intro: str
    markdown: str
    notes: list[str]

    def text(self) -> str:
        """The table with its lines, as ``comparison.md`` has it."""
        return "\n\n".join([self.intro, self.markdown, *self.notes])


def beyond_error_blocks(rows: list[dict[str, Any]], baseline: str, sets: list[str]) -> list[TableBlock]:
    """The selective-classification table (with a line on which methods AURC ranks otherwise than
    the error) and one table per OOD set; none where no run has an evaluation."""
    if not any(r.get(f"{figure_stem('aurc')}_mean") is not None for r in rows):
        return []
    heads = {name: figure(key).label for key, (name, _) in TEST_FIGURES.items()}
    added = [
        f for f in added_figures() if any(r.get(f"{figure_stem(f.name)}_mean") is not None for r in rows)
    ]
    heads.update({f.name: f.label for f in added})
    shown = ("aurc", "augrc", "risk_at_80", "aurc_scaled", "aurc_pnorm", "aps_size", *(f.name for f in added))
    formats = {f.name: f.fmt for f in added}
    lines = [
        f"| method | error % | {heads['aurc']} | p vs {baseline} | "
        + " | ".join(heads[name] for name in shown[1:])
        + " |",
        "| --- " + "| ---: " * (len(shown) + 2) + "|",
    ]
    for r in rows:
        cells = [_cell(r, figure_stem(name), formats.get(name, ".2f")) for name in shown]
        cells.insert(1, _p_cell(r, figure_stem("aurc")))
        lines.append(
            f"| {r['method']} | {r['selected_mean']:.2f} ± {r['selected_std']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    moved = rank_changes(rows)
    selective = TableBlock(
        "Knowing when it is wrong, on the test split at the check each run selects (mean ± std over "
        "seeds; evaluation.json):",
        "\n".join(lines),
        [SELECTIVE_LEGEND.format(baseline=baseline), *([moved] if moved else [])],
    )
    return [selective, *(ood_table(rows, baseline, set_name) for set_name in sets)]


def beyond_error_tables(rows: list[dict[str, Any]], baseline: str, sets: list[str]) -> str | None:
    """The Markdown of :func:`beyond_error_blocks`, each table with its lines; None where no run
    has an evaluation."""
    blocks = beyond_error_blocks(rows, baseline, sets)
    return "\n\n".join(block.text() for block in blocks) if blocks else None


SELECTIVE_LEGEND = (
    "AURC: the area under the risk-coverage curve of the max-softmax confidence (the mean error of "
    "the k most confident predictions over k = 1..N; 0-100, lower is better; p: Welch's t-test "
    "against {baseline}); AUGRC: the same of the generalized risk (errors among the accepted, over "
    "all N; Traub et al. 2024); risk at 80 % cov.: the error of the 80 % most confident; scaled: "
    "the confidence of logits / T (T fit on dev); pNorm: Xia et al.'s logit normalisation (p chosen "
    "on dev); APS set size: the mean size of the split-conformal APS sets calibrated on dev for 90 % "
    "coverage. '-': a run without the figure (labelemb evaluate adds it)."
)


def ood_table(rows: list[dict[str, Any]], baseline: str, set_name: str) -> TableBlock:
    """The detection table of OOD set ``set_name`` against the test split, and its SCOD figures:
    the MSP's AURC (with Welch's p against the baseline) and AUGRC, and those of the score with the
    lowest mean SCOD AURC over the table's rows (named in the head)."""
    detection = list(OOD_FIGURES.items())[:4]
    heads = [figure(key).label for key, _ in detection]
    names = [name for _, (name, _) in detection]
    best = best_scod_score(rows, set_name)
    scod = ["scod_msp_aurc", "scod_msp_augrc", f"scod_{best}_aurc", f"scod_{best}_augrc"]
    scod_heads = ["SCOD AURC % MSP", f"p vs {baseline}", "SCOD AUGRC % MSP"]
    scod_heads += [f"SCOD AURC % {best}", f"SCOD AUGRC % {best}"]
    lines = [
        f"| method | {heads[0]} | {heads[1]} | p vs {baseline} | {heads[2]} | {heads[3]} | "
        + " | ".join(scod_heads)
        + " |",
        "| --- " + "| ---: " * (5 + len(scod_heads)) + "|",
    ]
    for r in rows:
        cells = [_cell(r, ood_stem(set_name, name)) for name in [*names, *scod]]
        cells.insert(2, _p_cell(r, ood_stem(set_name, "energy_auroc")))
        cells.insert(6, _p_cell(r, ood_stem(set_name, "scod_msp_aurc")))
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return TableBlock(
        f"Out-of-distribution inputs: {set_name} against the test split (in-distribution positive):",
        "\n".join(lines),
        [
            "AUROC: how often an in-distribution test input scores above an out-of-distribution one "
            "(0-100, higher is better; MSP: max softmax, energy: logsumexp of the logits); FPR@95: the "
            "share of OOD inputs accepted at the threshold that accepts 95 % of the test inputs (lower "
            "is better).",
            SCOD_LEGEND.format(best=best, baseline=baseline),
        ],
    )


SCOD_LEGEND = (
    "SCOD: selective classification of the test inputs and the OOD inputs together, an accepted OOD "
    "input counting as an error: AURC, the mean risk of the k most confident inputs over k = 1..N; "
    "AUGRC, the mean share of all inputs accepted and wrong (0-100, lower is better; p: Welch's t-test "
    "against {baseline}); {best}: the score of the lowest mean SCOD AURC over these rows. '-': a run "
    "evaluated before SCOD (labelemb evaluate adds it)."
)


def best_scod_score(rows: list[dict[str, Any]], set_name: str) -> str:
    """The score of the lowest mean SCOD AURC over the rows that have one (MSP where none has)."""
    means: dict[str, float] = {}
    for score in SCOD_SCORES:
        held = [r.get(f"{ood_stem(set_name, f'scod_{score}_aurc')}_mean") for r in rows]
        held = [value for value in held if value is not None]
        if held:
            means[score] = sum(held) / len(held)
    return min(means, key=lambda score: (means[score], SCOD_SCORES.index(score))) if means else "msp"


def rank_changes(rows: list[dict[str, Any]]) -> str | None:
    """A line naming the methods whose rank by AURC differs from their rank by error (None where
    the two orders agree, or fewer than two methods have both)."""
    stem = f"{figure_stem('aurc')}_mean"
    ranked = [r for r in rows if r.get(stem) is not None]
    if len(ranked) < 2:
        return None
    by_error = _ranks(ranked, "selected_mean")
    by_aurc = _ranks(ranked, stem)
    moved = [m for m in sorted(by_aurc, key=by_aurc.__getitem__) if by_aurc[m] != by_error[m]]
    if not moved:
        return "By AURC the methods rank as by error."
    places = ", ".join(f"{m} ({by_error[m]} -> {by_aurc[m]})" for m in moved)
    return f"Ranked by AURC rather than by error (1 = best), these methods move: {places}."


def _ranks(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    """Each method's rank by ``key`` (lowest first; equal values share the better rank)."""
    return {r["method"]: 1 + sum(other[key] < r[key] for other in rows) for r in rows}
