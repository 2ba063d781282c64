"""Every figure labelemb records, declared once: its key, the unit it is stored in, which way is
better, the head a table gives it and its family (:class:`Figure`, :data:`DECLARED`).

Units, one convention for tables and one rule for files:

- **Tables show a share in percent** (0-100, "ECE %", "AURC %"); an NLL in nats, a Brier score
  (0-2), a count or a temperature as it is. :meth:`Figure.shown` turns a stored value into the
  table's; no reader multiplies by 100 by hand.
- **Files keep each key's value as runs have always written it**, and each declaration says which
  (``stored``): the figures of ``evaluation.json`` store a share as a fraction (0-1, as
  torchmetrics and torch-uncertainty return one), except its recalibration figures (``recal_*``,
  percent); the check records, ``summary.json`` and ``shift.json`` store a share in percent (the
  error, the calibration errors, ``dev_aurc``, ``aurc``). Changing a stored unit would make every
  run folder written before read wrong (or need a second reader for old keys); declaring each
  key's stored unit keeps every old folder read as it was, and moves the conversion to one place.
  A new figure stores a share as a fraction.

A record's key is a declared name, or one with a split before it and a variant after it
(``test_ece_scaled``: the split ``test``, the figure ``ece``, scaled; ``selected_test_nll`` in a
summary): :func:`figure_of` finds its declaration.

Adding a figure to ``labelemb evaluate`` is one :func:`declare` (here, or in the user's code
before the evaluation and the tables run) with the function of a split's logits and labels that
computes it (:attr:`Figure.compute`): the evaluation records it among its test figures
(:func:`computed_figures`) and the beyond-error table gives it a column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

#: How a value is stored in a file: a share as a ``fraction`` (0-1) or in ``percent`` (0-100); an
#: NLL in ``nats`` per example; a ``brier`` score (0-2); a ``count`` (a set size); a ``plain``
#: number (a temperature, a chosen p).
Unit = Literal["fraction", "percent", "nats", "brier", "count", "plain"]
#: What a figure judges: ``error``, ``calibration``, ``selective`` (selective classification),
#: ``ood`` (out-of-distribution detection), ``conformal`` (prediction sets), ``scod`` (both
#: together), ``recalibration`` (after a post-hoc map) or ``shift`` (under corruption).
Family = Literal["error", "calibration", "selective", "ood", "conformal", "scod", "recalibration", "shift"]


@dataclass(frozen=True)
class Figure:
    """One figure: ``name`` (its key in a record), ``family``, ``label`` (a table's column head,
    in the table's unit), ``stored`` (its unit in a file), whether lower is better, and the format
    of a table's cell."""

    name: str
    family: Family
    label: str
    stored: Unit = "fraction"
    lower_is_better: bool = True
    fmt: str = ".2f"
    #: A function of a split's logits ``(N, m)`` and labels ``(N,)`` giving the figure as stored,
    #: for a figure added to ``labelemb evaluate``'s test figures (:func:`computed_figures`); the
    #: built-in figures are computed by their families' functions and leave it None.
    compute: Callable[[Any, Any], float] | None = field(default=None, compare=False)

    @property
    def direction(self) -> str:
        """``lower`` or ``higher``: which is better."""
        return "lower" if self.lower_is_better else "higher"

    @property
    def share(self) -> bool:
        """Whether it is a share (an error, a coverage...): a table shows it in percent."""
        return self.stored in ("fraction", "percent")

    def shown(self, value: float) -> float:
        """``value`` as stored, in the table's unit: a fraction times 100, the rest as it is."""
        return 100.0 * value if self.stored == "fraction" else value

    def cell(self, value: float | None) -> str:
        """A table's cell of a stored ``value``; "-" for None."""
        return "-" if value is None else format(self.shown(value), self.fmt)


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
    ``dev_aurc``: each stored as its figure is); None for a key that is no declared figure."""
    for moment in ("", *MOMENTS):
        for split in ("", *SPLITS):
            for suffix in ("", SCALED):
                head = moment + split
                if key.startswith(head) and key.endswith(suffix):
                    held = DECLARED.get(key[len(head) : len(key) - len(suffix)])
                    if held is not None:
                        return held
    return None


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
    Figure("ece", "calibration", "ECE %", "percent"),
    Figure("adaece", "calibration", "AdaECE %", "percent"),
    Figure("classwise_ece", "calibration", "classwise ECE %", "percent"),
    Figure("mce", "calibration", "MCE %", "percent"),
    Figure("nll", "calibration", "NLL", "nats", fmt=".3f"),
    Figure("brier", "calibration", "Brier", "brier", fmt=".3f"),
    Figure("temperature", "calibration", "T", "plain", lower_is_better=False),
    # The AURC of the raw max-softmax confidence on a split (``dev_aurc``, shift.json's ``aurc``).
    Figure("aurc", "selective", "AURC %", "percent"),
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
            Figure(f"recal_{_map}_{_name}", "recalibration", f"{_head} {_said}", _base.stored, fmt=_base.fmt)
        )
    # The dev ECE after the map, cross-fitted on dev (a check's record; ``tune --objective ece_<map>``).
    declare(Figure(f"ece_{_map}", "recalibration", f"ECE % {_said}", "percent"))

#: Under shift, against a baseline: Hendrycks & Dietterich's mean corruption error (baseline = 100).
declare(Figure("mce_corruption", "shift", "mCE", "plain", fmt=".1f"))

#: What one split's figures are (:func:`~labelemb.metrics.split.split_figures`): shift.json's keys
#: for the clean split and each condition, and ``dev_<name>`` in a check's record (its error aside).
SPLIT_FIGURES = ("error", "ece", f"ece{SCALED}", "nll", f"nll{SCALED}", "aurc")
