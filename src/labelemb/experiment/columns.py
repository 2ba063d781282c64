"""The columns of a comparison's rows (:attr:`Comparison.rows <labelemb.experiment.Comparison>`,
comparison.csv), described from the code that fills them: each figure's head, unit and direction
from its declaration (:mod:`labelemb.metrics.figures`), its key stem from the table module that
computes it. The API reference's table of the columns is :func:`columns_markdown`; a test holds
the page to it, and every key of a comparison's rows to a column here::

    column_of("ood_patches_msp_auroc_mean").what  # 'MSP AUROC % (an OOD set told from the test split)'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..analysis.beyond_error import OOD_FIGURES, TEST_FIGURES, figure_stem, ood_stem
from ..analysis.calibration_table import (
    CALIBRATION_COLUMNS,
    MAP_TABLE,
    TEMPERATURE,
    calibration_statistics,
    map_figure,
    map_statistic,
)
from ..analysis.noise_table import DISPUTED_FIGURES, NOISE_FIGURES, WEIGHTS, noise_stem
from ..analysis.shift_table import CLEAN_ERROR, CONDITION_FIGURES, CONDITIONS, CORRUPTIONS, LEFT_OUT, MCE
from ..analysis.tag_table import TAG_CALIBRATION, TAG_FIGURES, tag_stem
from ..metrics.figures import SCALED, Figure, figure, figure_of
from ..metrics.recalibration import MAPS

#: The statistics over a method's seeds a figure's column has.
SPREAD = ("mean", "std")
WITH_P = ("mean", "std", "p_value")
#: A placeholder in a stem: an OOD set's label (``ood_<set>_msp_auroc``), a reported score's key.
OOD_SET = "<set>"
REPORTED = "<reported>"
ADDED = "<figure>"
#: The unit and direction of the task's own score (a classifier's error: percent, lower).
SCORE = "the score's"


@dataclass(frozen=True)
class Column:
    """One column of the rows, or one figure's columns: ``stem`` with each of ``statistics``
    after it (``ece`` -> ``ece_mean``, ``ece_std``, ``ece_p_value``; none: the stem is the key),
    ``what`` it holds, the record it is computed from (``source``), its ``unit`` and which way is
    ``better`` (empty where neither is)."""

    section: str
    stem: str
    statistics: tuple[str, ...]
    what: str
    source: str
    unit: str
    better: str = ""

    def keys(self) -> list[str]:
        """The row keys of this column (with its placeholders)."""
        return [f"{self.stem}_{part}" for part in self.statistics] or [self.stem]

    def pattern(self) -> re.Pattern[str]:
        """A pattern every key of this column matches (a placeholder: any text)."""
        stem = re.escape(self.stem)
        for placeholder, text in ((OOD_SET, ".+"), (REPORTED, "test_.+"), (ADDED, ".+")):
            stem = stem.replace(re.escape(placeholder), text)
        tail = "_(" + "|".join(self.statistics) + ")" if self.statistics else ""
        return re.compile(stem + tail)


def _declared(
    section: str, stem: str, statistics: tuple[str, ...], declared: Figure, what: str, source: str
) -> Column:
    # A plain number declared "higher" (a temperature) is a setting the ranks leave be, not a score.
    better = "" if declared.unit == "plain" and not declared.lower_is_better else declared.direction
    return Column(section, stem, statistics, what, source, declared.unit, better)


def _every_comparison() -> Iterator[Column]:
    section, task = "Every comparison", SCORE
    yield Column(section, "method", (), "the method's name", "", "text")
    yield Column(section, "seeds", (), "how many of its runs finished", "", "count")
    yield Column(
        section,
        "selected",
        ("mean", "std", "min", "max"),
        "the task's score on test at each run's selected check (a classifier: its error %)",
        "summary.json selected_<metric>",
        task,
        task,
    )
    yield Column(
        section,
        "final",
        SPREAD,
        "the same score at the last check",
        "summary.json final_<metric>",
        task,
        task,
    )
    yield Column(
        section,
        REPORTED,
        SPREAD,
        "each other score the task reports (test_macro_f1, test_f1_micro, test_lrap, test_rouge1)",
        "summary.json selected_<reported>",
        task,
        task,
    )
    yield Column(
        section, "seconds_per_epoch", (), "training seconds per epoch", "summary.json", "seconds", "lower"
    )
    yield Column(
        section, "timing", (), "alone, batched or mixed: how the runs were timed", "summary.json", "text"
    )
    yield Column(
        section,
        "auac",
        (),
        "area under the test-accuracy curve over epochs",
        "metrics.jsonl",
        "plain",
        "higher",
    )
    yield Column(
        section,
        "time_fraction",
        (),
        "seconds to reach the baseline's best dev score, over the baseline's",
        "metrics.jsonl",
        "plain",
        "lower",
    )
    yield Column(
        section,
        "at_baseline_compute",
        (),
        "test score at the best dev check within the baseline's training FLOPs",
        "metrics.jsonl",
        task,
        task,
    )
    yield Column(section, "p_value", (), "Welch's p of the selected score against the baseline", "", "plain")
    yield Column(
        section, "selected_epoch", (), "the mean epoch of the selected checks", "summary.json", "plain"
    )
    yield Column(section, "stopped_early", (), "how many runs early stopping ended", "summary.json", "count")
    yield Column(
        section, "metric", (), "the summary key of the task's score (test_error)", "summary.json", "text"
    )


def _calibration() -> Iterator[Column]:
    section = "Calibration (classifiers)"
    for key, (name, head, _) in CALIBRATION_COLUMNS.items():
        yield _declared(section, name, WITH_P, figure(name), head, f"summary.json {key}")
    for name in calibration_statistics():
        scaled = name.endswith(SCALED)
        declared = figure_of(name) or figure(name)
        source = f"selected_{name}" if name == TEMPERATURE else f"selected_test_{name}"
        what = f"{declared.label} after temperature scaling" if scaled else declared.label
        yield _declared(section, name, SPREAD, declared, what, f"summary.json {source}")
    for map_name in MAPS:
        for name in MAP_TABLE:
            declared = map_figure(name, map_name)
            stem = map_statistic(name, map_name)
            yield _declared(
                section, stem, SPREAD, declared, declared.label, f"evaluation.json test.{declared.name}"
            )


def _evaluation() -> Iterator[Column]:
    section = "Knowing when it is wrong (evaluation.json)"
    for key, (name, _) in TEST_FIGURES.items():
        declared = figure(key)
        yield _declared(
            section, figure_stem(name), WITH_P, declared, declared.label, f"evaluation.json test.{key}"
        )
    yield Column(
        section,
        figure_stem(ADDED),
        WITH_P,
        "each figure declared with a function of its own (labelemb evaluate adds it)",
        "evaluation.json test.<figure>",
        "declared",
        "declared",
    )
    for key, (name, _) in OOD_FIGURES.items():
        declared = figure(key)
        together = "ranked with the test split" if key.startswith("scod") else "told from the test split"
        what = f"{declared.label} (an OOD set {together})"
        yield _declared(
            section,
            ood_stem(OOD_SET, name),
            WITH_P,
            declared,
            what,
            f"evaluation.json ood.<set>.figures.{key}",
        )


def _shift() -> Iterator[Column]:
    section = "Under shift (shift.json)"
    yield _declared(
        section,
        CLEAN_ERROR,
        SPREAD,
        figure("error"),
        "error % on the clean test split",
        "shift.json clean.error",
    )
    for name, stem in CONDITION_FIGURES.items():
        declared = figure_of(name) or figure(name)
        scaled = " after temperature scaling" if name.endswith(SCALED) else ""
        what = f"{declared.label}{scaled}, the mean over the conditions every run has"
        yield _declared(section, stem, SPREAD, declared, what, f"shift.json conditions.<condition>.{name}")
    error = CONDITION_FIGURES["error"]
    yield Column(
        section,
        f"{error}_p_value",
        (),
        "Welch's p of the error under shift against the baseline",
        "",
        "plain",
    )
    yield _declared(
        section, MCE, (), figure("mce_corruption"), "mean corruption error (the baseline: 100)", "shift.json"
    )
    yield Column(section, CONDITIONS, (), "how many conditions every shifted run has", "shift.json", "count")
    yield Column(section, CORRUPTIONS, (), "how many corruptions they are of", "shift.json", "count")
    yield Column(section, LEFT_OUT, (), "the conditions only some runs have, left out", "shift.json", "text")


def _noise() -> Iterator[Column]:
    section = "Trained on noisy labels (evaluation.json noise, disputed)"
    yield Column(
        section,
        "noise_rate_mean",
        (),
        "the share of training labels that are wrong",
        "evaluation.json noise.realised_rate",
        "percent",
    )
    for weights in WEIGHTS:
        for key in NOISE_FIGURES:
            declared = figure(key)
            yield _declared(
                section,
                noise_stem(weights, key),
                WITH_P,
                declared,
                f"{declared.label}, {weights} weights",
                f"evaluation.json noise.{weights}.{key}",
            )
    better = {"within_5": "higher", "median_rank": "lower", "auroc": "higher"}
    for key, (head, _) in DISPUTED_FIGURES.items():
        what = f"disputed test labels: {head}"
        yield Column(
            section,
            f"disputed_{key}",
            WITH_P,
            what,
            f"evaluation.json disputed.{key}",
            "percent",
            better[key],
        )


def _tags() -> Iterator[Column]:
    section = "Trained on tag sets (summary.json)"
    for name in (*TAG_FIGURES, *TAG_CALIBRATION):
        declared = figure_of(name) or figure(name)
        what = declared.label + (" after one temperature" if name.endswith(SCALED) else "")
        yield _declared(section, tag_stem(name), WITH_P, declared, what, f"summary.json selected_test_{name}")


def row_columns() -> list[Column]:
    """Every column a comparison's rows may have, by section, in the order the rows hold them."""
    return [*_every_comparison(), *_calibration(), *_evaluation(), *_shift(), *_noise(), *_tags()]


def column_of(key: str) -> Column | None:
    """The column a row's ``key`` is of (``ece_p_value``: the ECE's); None for a key no column
    describes."""
    fixed = next((c for c in row_columns() if key in c.keys()), None)
    return fixed or next((c for c in row_columns() if c.pattern().fullmatch(key)), None)


def columns_markdown() -> str:
    """The API reference's table of the rows' columns: a table per section."""
    lines: list[str] = []
    for section in dict.fromkeys(c.section for c in row_columns()):
        lines += [
            f"**{section}**",
            "",
            "| column | holds | from | unit | better |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in (c for c in row_columns() if c.section == section):
            key = f"{c.stem}_{{{','.join(c.statistics)}}}" if c.statistics else c.stem
            source = f"`{c.source}`" if c.source else ""
            lines.append(f"| `{key}` | {c.what} | {source} | {c.unit} | {c.better} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
