"""Every figure labelemb records, declared once: its key, its unit, which way is better, the head
a table gives it and its family (:class:`Figure`, :data:`DECLARED`).

One unit convention, in files and tables alike: **a share is in percent** (0-100: an error, an
ECE, an AURC, an AUROC, a coverage), an NLL in nats, a Brier score (0-2), a count or a temperature
as it is. The check records, ``summary.json``, ``evaluation.json`` and ``shift.json`` store a
figure in the unit a table shows it in, so no reader converts one; the functions of
:mod:`labelemb.metrics` that return a declared figure return it so. They compute each share as a
fraction, as the primitives beneath them do (:func:`~labelemb.metrics.selective.aurc`,
:func:`~labelemb.metrics.ood.fpr_at_tpr`, :func:`~labelemb.metrics.ood.detection_figures`, as
torchmetrics and scikit-learn), and :func:`in_units` records it in its declared unit: the one
place a share becomes a percent. ``evaluation.json`` before its format 3 stored the
shares of its selective, conformal, OOD and SCOD figures as fractions:
:func:`evaluation_in_percent` reads such a record in today's unit, so every old run folder
reads as it did. (The conformal calibration a prediction holds keeps its level and test
coverage as probabilities, as ``labelemb predict --sets 0.9`` takes a level: an input's unit, not
a figure's.)

A record's key is a declared name, or one with a split before it and a variant after it
(``test_ece_scaled``: the split ``test``, the figure ``ece``, scaled; ``selected_test_nll`` in a
summary): :func:`figure_of` finds its declaration.

Adding a figure to ``labelemb evaluate`` is one :func:`declare` (here, or in the user's code
before the evaluation and the tables run) with the function of a split's logits and labels that
computes it (:attr:`Figure.compute`): the evaluation records it among its test figures
(:func:`computed_figures`) and the beyond-error table gives it a column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

#: A figure's unit, in a file and in a table: a share in ``percent`` (0-100); an NLL in ``nats``
#: per example; a ``brier`` score (0-2); a ``count`` (a set size); a ``plain`` number (a
#: temperature, a chosen p, an mCE).
Unit = Literal["percent", "nats", "brier", "count", "plain"]
#: What a figure judges: ``error``, ``calibration``, ``selective`` (selective classification),
#: ``ood`` (out-of-distribution detection), ``conformal`` (prediction sets), ``scod`` (both
#: together), ``recalibration`` (after a post-hoc map), ``shift`` (under corruption), ``noise``
#: (what training on wrong labels did) or ``multi_label`` (a tag-set classifier's figures).
Family = Literal[
    "error",
    "calibration",
    "selective",
    "ood",
    "conformal",
    "scod",
    "recalibration",
    "shift",
    "noise",
    "multi_label",
]


@dataclass(frozen=True)
class Figure:
    """One figure: ``name`` (its key in a record), ``family``, ``label`` (a table's column head),
    ``unit`` (in a file and a table alike), whether lower is better, and the format of a table's
    cell."""

    name: str
    family: Family
    label: str
    unit: Unit = "percent"
    lower_is_better: bool = True
    fmt: str = ".2f"
    #: A function of a split's logits ``(N, m)`` and labels ``(N,)`` giving the figure in its unit,
    #: for a figure added to ``labelemb evaluate``'s test figures (:func:`computed_figures`); the
    #: built-in figures are computed by their families' functions and leave it None.
    compute: Callable[[Any, Any], float] | None = field(default=None, compare=False)
    #: Whether ``labelemb tune --objective <name>`` may judge a trial by it, and by which record of
    #: a check: ``raw`` (``dev_<name>``) or ``scaled`` (``dev_<name>_scaled``, after temperature
    #: scaling); None: it is no objective (a check does not record it on dev).
    objective: Literal["raw", "scaled"] | None = None

    @property
    def direction(self) -> str:
        """``lower`` or ``higher``: which is better."""
        return "lower" if self.lower_is_better else "higher"

    @property
    def share(self) -> bool:
        """Whether it is a share (an error, a coverage...), in percent."""
        return self.unit == "percent"

    def cell(self, value: float | None) -> str:
        """A table's cell of ``value``; "-" for None."""
        return "-" if value is None else format(value, self.fmt)


#: Every declared figure by name.
DECLARED: dict[str, Figure] = {}


def declare(*figures: Figure) -> Figure:
    """Declares ``figures`` (a name declared again replaces its declaration); the last of them."""
    for figure in figures:
        DECLARED[figure.name] = figure
    return figures[-1]


def figure(name: str) -> Figure:
    """The declaration of ``name``; a KeyError naming the families where none is declared."""
    try:
        return DECLARED[name]
    except KeyError:
        families = sorted({f.family for f in DECLARED.values()})
        raise KeyError(f"no figure {name!r} is declared (families: {', '.join(families)})") from None


#: What a record's key may start with before its figure's name: a summary's moment, then a split.
MOMENTS = ("selected_", "final_")
SPLITS = ("test_", "dev_")
#: What a record's key may end with after its figure's name: after temperature scaling.
SCALED = "_scaled"


def figure_of(key: str) -> Figure | None:
    """The declaration of a record's ``key``: the figure itself (``selective_msp_aurc``), or the
    one a split, a summary's moment or ``_scaled`` is added to (``selected_test_ece_scaled``,
    ``dev_aurc``: each in its figure's unit); None for a key that is no declared figure."""
    for moment in ("", *MOMENTS):
        for split in ("", *SPLITS):
            for suffix in ("", SCALED):
                head = moment + split
                if key.startswith(head) and key.endswith(suffix):
                    held = DECLARED.get(key[len(head) : len(key) - len(suffix)])
                    if held is not None:
                        return held
    return None


#: A figure at another operating point than the declared one (the risk at 90 % coverage, the
#: FPR at 99 % TPR) is a figure of the same kind, in the same unit: the declared one's.
OPERATING_POINTS = (
    (re.compile(r"_risk_at_[0-9_]+$"), "_risk_at_80"),
    (re.compile(r"_coverage_at_[0-9_]+$"), "_coverage_at_5"),
    (re.compile(r"_fpr[0-9_]+$"), "_fpr95"),
)

#: The risk-coverage curves a run's evaluation keeps: the selective risk of the max-softmax
#: confidence (``evaluation.json``'s ``test``) and the SCOD risk (each OOD set's), a share at each
#: coverage, in percent as the figures.
RISK_CURVE = "selective_msp_risk_curve"
SCOD_CURVE = "scod_msp_risk_curve"
SHARE_CURVES = (RISK_CURVE, SCOD_CURVE)


def in_units(fractions: Mapping[str, Any]) -> dict[str, Any]:
    """Figures computed with every share a fraction (0-1, as scikit-learn and torchmetrics give
    them), each in the unit its declaration records: a share in percent, any other unit as it
    is; a risk curve's points likewise. The one place a share becomes a percent, so no function
    that computes a figure writes its unit. A key no figure declares is a KeyError that says so."""
    recorded: dict[str, Any] = {}
    for key, value in fractions.items():
        if key in SHARE_CURVES:
            recorded[key] = [100.0 * float(point) for point in value]
            continue
        declared = figure_of(key)
        if declared is None:
            declared = figure_of(_at_declared_point(key))
        if declared is None:
            raise KeyError(f"{key!r} is no declared figure: declare it, with its unit, before it is recorded")
        recorded[key] = 100.0 * value if declared.share else value
    return recorded


def percent_of(count: Any, total: Any) -> Any:
    """``count`` of ``total`` in percent, as every share is recorded: ``100 * count / total``, an
    exact product and one rounding, so a count's share (an error of k examples in N) is the number
    it always was; :func:`in_units` of the fraction ``count / total`` differs in the last bit for
    about one k in four."""
    return 100.0 * count / total


def _at_declared_point(key: str) -> str:
    for pattern, declared in OPERATING_POINTS:
        key = pattern.sub(declared, key)
    return key


def objectives() -> dict[str, str]:
    """``tune --objective``'s figures: each declared objective's name -> the dev record key a
    trial is judged by (``ece`` -> ``dev_ece_scaled``), in the order they were declared."""
    return {
        f.name: f"dev_{f.name}{SCALED if f.objective == 'scaled' else ''}"
        for f in DECLARED.values()
        if f.objective is not None
    }


def family(name: Family) -> list[Figure]:
    """The declared figures of family ``name``, in the order they were declared."""
    return [f for f in DECLARED.values() if f.family == name]


def added_figures() -> list[Figure]:
    """The declared figures with a function of their own (:attr:`Figure.compute`), in the order
    they were declared: what ``labelemb evaluate`` adds to its test figures and the beyond-error
    table to its columns."""
    return [f for f in DECLARED.values() if f.compute is not None]


def computed_figures(logits: Any, labels: Any) -> dict[str, float]:
    """Each of :func:`added_figures` of a split's ``logits`` and ``labels``, by name."""
    return {f.name: float(f.compute(logits, labels)) for f in added_figures() if f.compute is not None}


# --------------------------------------------------------------------------- the declarations
# A split's error and calibration, as the check records (``test_ece``, ``dev_nll_scaled``) and
# shift.json keeps them: percent, as the error always was.
declare(
    Figure("error", "error", "error %", "percent"),
    # `tune --objective ece` judges the ECE after temperature scaling: the raw one mostly
    # rewards a method for being tempered already.
    Figure("ece", "calibration", "ECE %", "percent", objective="scaled"),
    Figure("adaece", "calibration", "AdaECE %", "percent"),
    Figure("classwise_ece", "calibration", "classwise ECE %", "percent"),
    Figure("mce", "calibration", "MCE %", "percent"),
    Figure("nll", "calibration", "NLL", "nats", fmt=".3f", objective="raw"),
    Figure("brier", "calibration", "Brier", "brier", fmt=".3f"),
    Figure("temperature", "calibration", "T", "plain", lower_is_better=False),
    # The AURC of the raw max-softmax confidence on a split (``dev_aurc``, shift.json's ``aurc``).
    Figure("aurc", "selective", "AURC %", "percent", objective="raw"),
)

#: The confidence scores of selective classification (evaluation.json), and what a table says of each.
CONFIDENCES = {"msp": "", "msp_scaled": " scaled", "pnorm": " pNorm"}
for _score, _said in CONFIDENCES.items():
    declare(
        Figure(f"selective_{_score}_aurc", "selective", f"AURC %{_said}"),
        Figure(f"selective_{_score}_augrc", "selective", f"AUGRC %{_said}"),
        Figure(f"selective_{_score}_risk_at_80", "selective", f"risk at 80 % cov. %{_said}"),
        Figure(
            f"selective_{_score}_coverage_at_5",
            "selective",
            f"cov. at 5 % risk %{_said}",
            lower_is_better=False,
        ),
    )
declare(Figure("selective_pnorm_p", "selective", "pNorm p", "plain", lower_is_better=False))

#: The split-conformal sets (evaluation.json), and what a table calls each.
CONFORMAL_SETS = {"thr": "THR", "aps": "APS", "raps": "RAPS"}
declare(Figure("conformal_level", "conformal", "target coverage %", lower_is_better=False))
for _method, _said in CONFORMAL_SETS.items():
    declare(
        Figure(f"conformal_{_method}_coverage", "conformal", f"{_said} coverage %", lower_is_better=False),
        Figure(f"conformal_{_method}_set_size", "conformal", f"{_said} set size", "count"),
    )

#: The OOD scores (those of labelemb.metrics.ood.SCORES), and what a table calls each.
OOD_SCORES = {"msp": "MSP", "max_logit": "max-logit", "energy": "energy", "entropy": "entropy"}
for _score, _said in OOD_SCORES.items():
    declare(
        Figure(f"ood_{_score}_auroc", "ood", f"{_said} AUROC %", lower_is_better=False),
        Figure(f"ood_{_score}_aupr_in", "ood", f"{_said} AUPR-in %", lower_is_better=False),
        Figure(f"ood_{_score}_aupr_out", "ood", f"{_said} AUPR-out %", lower_is_better=False),
        Figure(f"ood_{_score}_fpr95", "ood", f"{_said} FPR@95 %"),
        # SCOD: the test split and the OOD set ranked together, an accepted OOD input an error.
        Figure(f"scod_{_score}_aurc", "scod", "SCOD AURC %"),
        Figure(f"scod_{_score}_augrc", "scod", "SCOD AUGRC %"),
    )

#: The post-hoc maps (those of labelemb.metrics.recalibration.MAPS), and what a table calls each.
MAP_NAMES = {"vector": "vector", "dirichlet": "Dirichlet", "binning": "binning", "isotonic": "isotonic"}
#: Each map's figures on test (evaluation.json's ``recal_<map>_<figure>``; shares in percent, as
#: :class:`~labelemb.metrics.calibration.Calibration` gives them) and their table heads.
MAP_HEADS = {
    "ece": "ECE %",
    "adaece": "AdaECE %",
    "classwise_ece": "cw-ECE %",
    "nll": "NLL",
    "brier": "Brier",
    "error": "error %",
}
for _map, _said in MAP_NAMES.items():
    for _name, _head in MAP_HEADS.items():
        _base = DECLARED[_name]
        declare(
            Figure(f"recal_{_map}_{_name}", "recalibration", f"{_head} {_said}", _base.unit, fmt=_base.fmt)
        )
    # The dev ECE after the map, cross-fitted on dev (a check's record; ``tune --objective ece_<map>``).
    declare(Figure(f"ece_{_map}", "recalibration", f"ECE % {_said}", "percent", objective="raw"))

#: Under shift, against a baseline: Hendrycks & Dietterich's mean corruption error (baseline = 100).
declare(Figure("mce_corruption", "shift", "mCE", "plain", fmt=".1f"))

#: What training on wrong labels did (:mod:`labelemb.metrics.noise`): evaluation.json's ``noise``
#: record, at the selected and at the final weights.
declare(
    Figure("memorised", "noise", "memorised %"),
    Figure("flipped_correct", "noise", "predicted right %", lower_is_better=False),
    Figure("clean_fit", "noise", "right labels fitted %", lower_is_better=False),
    Figure("detect_auroc_loss", "noise", "AUROC of the loss %", lower_is_better=False),
    Figure("detect_auroc_margin", "noise", "AUROC of the margin %", lower_is_better=False),
)

#: A multi-label classifier's figures (:mod:`labelemb.metrics.multi_label`), on dev and test
#: (``test_map_macro``), and over the rest of a split (``test_rest_map_macro``): its examples left
#: once those whose every tag is among ``tags.set_apart`` are set apart (tags that a formulaic
#: description gives away).
MULTI_LABEL_FIGURES = (
    Figure("map_macro", "multi_label", "macro mAP %", lower_is_better=False),
    Figure("map_micro", "multi_label", "micro mAP %", lower_is_better=False),
    Figure("f1_micro", "multi_label", "micro-F1 %", lower_is_better=False),
    Figure("f1_macro", "multi_label", "macro-F1 %", lower_is_better=False),
    Figure("hamming", "multi_label", "Hamming loss %", fmt=".3f"),
    Figure("exact_match", "multi_label", "exact match %", lower_is_better=False),
    Figure("lrap", "multi_label", "LRAP %", lower_is_better=False),
    Figure("ranking_loss", "multi_label", "ranking loss %"),
    Figure("coverage_error", "multi_label", "coverage error", "plain"),
)
#: Calibration per tag (:mod:`labelemb.metrics.tag_calibration`): the marginal ECE raw
#: (``test_tag_ece``, ``dev_tag_ece``), after one temperature fit on dev (``test_tag_ece_scaled``)
#: and after a temperature per tag fit on dev (``test_tag_ece_per_tag``).
TAG_CALIBRATION_FIGURES = (
    Figure("tag_ece", "multi_label", "tag ECE %"),
    Figure("tag_ece_per_tag", "multi_label", "tag ECE % per-tag T"),
)
declare(*MULTI_LABEL_FIGURES, *TAG_CALIBRATION_FIGURES)
declare(
    *(
        replace(f, name=f"rest_{f.name}", label=f"{f.label} (rest)")
        for f in (*MULTI_LABEL_FIGURES, *TAG_CALIBRATION_FIGURES)
    )
)
#: Whether a tag similarity recovers the tags' facets (:mod:`labelemb.analysis.facets`).
declare(
    Figure("facet_nearest", "multi_label", "nearest tag in its facet %", lower_is_better=False),
    Figure("facet_nearest_chance", "multi_label", "at random %", lower_is_better=False),
    Figure("facet_pair_auroc", "multi_label", "same-facet pair AUROC %", lower_is_better=False),
)
#: The threshold on a tag's probability that predicts it, chosen on dev (the best micro-F1).
declare(Figure("tag_threshold", "multi_label", "threshold", "plain", lower_is_better=False, fmt=".2f"))
#: The one temperature of every tag's logit, fit on dev (the binary cross-entropy's minimum).
declare(Figure("tag_temperature", "multi_label", "tag T", "plain", lower_is_better=False))

#: What one split's figures are (:func:`~labelemb.metrics.split.split_figures`): shift.json's keys
#: for the clean split and each condition, and ``dev_<name>`` in a check's record (its error aside).
SPLIT_FIGURES = ("error", "ece", f"ece{SCALED}", "nll", f"nll{SCALED}", "aurc")


# --------------------------------------------------------------------------- old run folders
#: The format of ``evaluation.json`` from which its shares are in percent
#: (labelemb.evaluation.run's ``EVALUATION_FORMAT``).
PERCENT_FROM_FORMAT = 3
#: The families whose shares ``evaluation.json`` stored as fractions before that format (its
#: recalibration figures were in percent already).
FRACTION_FAMILIES = ("selective", "conformal", "ood", "scod")


def evaluation_in_percent(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """``record``, an ``evaluation.json`` (None: none), with its shares in percent: as it is from
    format 3 on; before, its selective, conformal, OOD and SCOD shares, the figures an extension
    added (:attr:`Figure.compute`, a share stored as a fraction then) and its risk curves times
    100. It keeps its ``format``, which tells ``labelemb evaluate`` to compute it anew."""
    if not isinstance(record, dict) or record.get("format", 1) >= PERCENT_FROM_FORMAT:
        return record
    held = dict(record)
    if isinstance(record.get("test"), dict):
        held["test"] = _shares_in_percent(record["test"], RISK_CURVE)
    if isinstance(record.get("ood"), dict):
        held["ood"] = {label: _ood_set_in_percent(entry) for label, entry in record["ood"].items()}
    return held


def _ood_set_in_percent(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    held = _shares_in_percent(entry, SCOD_CURVE)
    if isinstance(entry.get("figures"), dict):
        held["figures"] = _shares_in_percent(entry["figures"], None)
    return held


def _shares_in_percent(figures: dict[str, Any], curve: str | None) -> dict[str, Any]:
    """``figures`` of an old record, each share that was a fraction (and the list under ``curve``)
    times 100; every other entry as it is."""
    held = dict(figures)
    for key, value in figures.items():
        declared = figure_of(key)
        was_fraction = (
            declared is not None
            and declared.share
            and (declared.family in FRACTION_FAMILIES or declared.compute is not None)
        )
        if was_fraction and isinstance(value, (int, float)):
            held[key] = 100.0 * value
    if curve is not None and isinstance(figures.get(curve), list):
        held[curve] = [100.0 * float(risk) for risk in figures[curve]]
    return held
