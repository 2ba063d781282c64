"""Multi-label text classification: a set of tags per text, judged by ranking and set figures.

The network gives one logit per tag and a tag's probability is its sigmoid. A check records, on dev
and test, the figures of :mod:`labelemb.metrics.multi_label` (macro and micro mAP, micro and macro
F1, Hamming loss, exact match, LRAP, ranking loss, coverage error), the set decisions taken at one
threshold on the probabilities chosen on dev (the best dev micro-F1; ``tags.threshold`` fixes it).
The dev macro mAP selects the reported check and is the headline figure on test. Each split also
records the calibration per tag (:mod:`labelemb.metrics.tag_calibration`): the marginal ECE of the
tag probabilities (``tag_ece``), and on test after one temperature for every tag
(``tag_ece_scaled``) and after a temperature per tag (``tag_ece_per_tag``), both fit on dev (the
one recorded as ``tag_temperature``); the test split is never fit on. Where
``tags.set_apart`` names tags, every figure is also given over each split's *rest*, the examples
left once those whose every tag is among them are set apart (``test_rest_map_macro``): on
Debian's debtags, the library packages whose formulaic descriptions give their tags away.

Training batches and evaluation read the texts as text classification does
(:class:`~labelemb.tasks.text_classification.TextClassification`), a batch's targets being the
bool ``(B, K)`` tag sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from ..data.text.classes import TextClassSplit
from ..metrics.figures import MULTI_LABEL_FIGURES, in_units
from ..metrics.multi_label import dev_threshold, tag_figures
from ..metrics.tag_calibration import TagTemperatures, marginal_ece, tag_temperatures
from ..options import Options
from .base import Predict, Selectable, always_selectable, rows_problem
from .registry import register
from .scoring import Scoring
from .text_classification import TextClassification

#: The figure a multi-label run is judged by: test macro mAP, with micro-F1 and LRAP beside it.
TEST_MAP = Scoring(
    metric="test_map_macro",
    name="test macro mAP",
    unit="%",
    higher_is_better=True,
    curve="test_map_macro",
    area="score",
    labels="classes",
    reported=(("test_f1_micro", "test micro-F1 %"), ("test_lrap", "test LRAP %")),
)
#: Without a dev split to choose it on, a tag is predicted where its probability reaches one half.
DEFAULT_THRESHOLD = 0.5
#: A split's tag sets are degenerate where more than this share of its rows is given more than half
#: of the tags each does not carry (:func:`degenerate_tag_sets`); a run warns of its selected check's.
DEGENERATE_ROWS = 0.5
#: The calibration per tag a test split records: the marginal ECE raw, after the one temperature
#: fit on dev and after the temperature per tag fit on dev (dev records the raw one).
TEST_CALIBRATION = ("tag_ece", "tag_ece_scaled", "tag_ece_per_tag")


class TagOptions(Options):
    """The config's ``tags:`` section of a multi-label run."""

    section: ClassVar[str] = "tags"
    #: Which figures a check also records never changes what the run learns.
    not_results: ClassVar[tuple[str, ...]] = ("set_apart",)

    #: The probability at which a tag is predicted; null: chosen on dev at each check (the best
    #: dev micro-F1 among 0.01 ... 0.99), 0.5 without a dev split.
    threshold: float | None = Field(None, gt=0, lt=1)
    #: Tags whose examples are set apart: an example whose every tag is among them is left out of
    #: the ``rest_`` figures, which every split also records (e.g. the library tags of packages a
    #: formulaic description gives away).
    set_apart: list[str] = Field(default_factory=list)


@register("multi_label_text", serves="tagged texts", options=(TagOptions,))
@dataclass
class MultiLabelText(TextClassification):
    """A set of tags per text: macro mAP selects the check (on dev) and judges the run (on test),
    with the other figures of :mod:`labelemb.metrics.multi_label` beside it."""

    data_kind: ClassVar[str] = "a multi-label text data set (a text and a set of tags per row)"
    #: Its batches hold texts, as text classification's: the same backbones read them.
    inputs: ClassVar[str] = "texts"
    selectable: ClassVar[tuple[str, ...]] = ("dev_map_macro",)
    scoring: ClassVar[Scoring] = TEST_MAP
    scorings: ClassVar[tuple[Scoring, ...]] = (TEST_MAP,)

    selection_metric: str = "dev_map_macro"
    #: What a check's line shows and a summary keeps at the selected and the final check.
    metrics: tuple[str, ...] = ("dev_map_macro", "test_lrap", "test_f1_micro", "test_map_macro")
    #: Kept at the selected check besides: every other test figure, the rest's where tags are set
    #: apart, and the threshold its decisions took (for a prediction to take it too).
    selected_fields: tuple[str, ...] = ("tag_threshold",)
    #: Its runs learn no "most frequent class" to beat: the trainer's chance warning is for
    #: single-label errors.
    chance_levels: ClassVar[None] = None
    #: Fixed threshold, or None: chosen on dev (:class:`TagOptions`).
    threshold: float | None = None
    #: Each tag's column: a row set apart when every tag it carries is among these.
    set_apart: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.selection_metric != "dev_map_macro":
            raise ValueError(
                f"a multi-label run selects its check by dev_map_macro, not {self.selection_metric!r} "
                "(selection_metric)"
            )

    @property
    def lower_is_better(self) -> bool:
        return False

    @classmethod
    def objective(cls, selection_metric: str | None) -> tuple[tuple[str, ...], bool]:
        return ("dev_map_macro",), True

    @classmethod
    def for_run(cls, config: Any, dataset: Any) -> MultiLabelText:
        options = config.section(TagOptions)
        unknown = sorted(set(options.set_apart) - set(dataset.class_names))
        if unknown:
            raise ValueError(
                f"tags.set_apart names {', '.join(map(repr, unknown))}, which the training tags do not "
                f"hold (they are {', '.join(dataset.class_names[:8])}, ...); fix the name or drop it"
            )
        return cls(
            eval_batch_size=config.train.eval_batch_size,
            selection_metric=config.selection_metric or "dev_map_macro",
            threshold=options.threshold,
            set_apart=tuple(dataset.class_names.index(tag) for tag in options.set_apart),
            data_counts=_data_counts(dataset),
            selected_fields=selected_figures(bool(options.set_apart)),
        )

    @staticmethod
    def method_problem(name: str) -> str | None:
        return rows_problem(name, "tags", "a multi-label classifier")

    def evaluate(
        self,
        predict: Predict,
        dev: TextClassSplit | None,
        test: TextClassSplit,
        selectable: Selectable = always_selectable,
    ) -> dict[str, Any]:
        """Every figure of each split (dev first: it chooses the threshold the test decisions take
        and fits the temperatures the test's scaled calibration takes)."""
        threshold = self.threshold
        temperatures: TagTemperatures | None = None
        results: dict[str, Any] = {}
        for name, split in (("dev", dev), ("test", test)):
            if split is None:
                continue
            logits = self.split_logits(predict, split)
            tags = split.labels.cpu()
            if threshold is None:
                threshold = dev_threshold(torch.sigmoid(logits), tags) if name == "dev" else DEFAULT_THRESHOLD
            results.update(self.split_figures(name, logits, tags, threshold, temperatures))
            if name == "test" and (facts := degenerate_tag_sets(torch.sigmoid(logits), tags, threshold)):
                results["degenerate_tag_sets"] = facts
            # Fit on dev alone, so that the test split judges the temperatures it never saw; a
            # diverged model's non-finite logits have none to fit (no scaled figures).
            if name == "dev" and bool(torch.isfinite(logits).all()):
                temperatures = tag_temperatures(logits, tags)
                results["tag_temperature"] = temperatures.one
        results["tag_threshold"] = threshold
        return results

    def split_figures(
        self,
        name: str,
        logits: Tensor,
        tags: Tensor,
        threshold: float,
        temperatures: TagTemperatures | None = None,
    ) -> dict[str, float]:
        """One split's figures as ``<name>_<figure>``, and its rest's as ``<name>_rest_<figure>``:
        those of :func:`rows_figures`."""
        whole = rows_figures(logits, tags, threshold, temperatures)
        figures = {f"{name}_{key}": value for key, value in whole.items()}
        if self.set_apart:
            rest = self.rest_rows(tags)
            if bool(rest.any()):
                rest_figures = rows_figures(logits[rest], tags[rest], threshold, temperatures)
                figures.update({f"{name}_rest_{key}": value for key, value in rest_figures.items()})
        return in_units(figures)

    def rest_rows(self, tags: Tensor) -> Tensor:
        """The rows that carry a tag outside :attr:`set_apart`."""
        outside = torch.ones(tags.shape[1], dtype=torch.bool)
        outside[list(self.set_apart)] = False
        return tags[:, outside].any(dim=1)

    def summary_fields(self) -> dict[str, Any]:
        reported = ["test_map_macro", "test_map_micro", "test_f1_micro", "test_f1_macro", "test_lrap"]
        return {
            "metric": "test_map_macro",
            "higher_is_better": True,
            "reported_metrics": reported,
            "selection_metric": self.selection_metric,
            **self.data_counts,
        }

    def label_representation(
        self, predict: Predict, dev: TextClassSplit | None, test: TextClassSplit, num_classes: int
    ) -> tuple[Tensor, str]:
        """Row k: the model's tag probabilities averaged over the texts that carry tag k, on dev (or
        test, without one)."""
        split, name = (dev, "dev") if dev is not None else (test, "test")
        probabilities = torch.sigmoid(self.split_logits(predict, split)).double()
        tags = split.labels.cpu().double()
        sums = tags.T @ probabilities
        return (sums / tags.sum(0).clamp(min=1)[:, None]).float(), f"mean tag probabilities on {name}"


def rows_figures(
    logits: Tensor, tags: Tensor, threshold: float, temperatures: TagTemperatures | None
) -> dict[str, float]:
    """The figures of some rows' ``logits`` and ``tags`` (fractions): :func:`tag_figures` at
    ``threshold`` and the marginal ECE of the probabilities (``tag_ece``); where ``temperatures``
    (fit on dev) are given, the marginal ECE after the one (``tag_ece_scaled``) and after each
    tag's own (``tag_ece_per_tag``)."""
    probabilities = torch.sigmoid(logits)
    figures = tag_figures(probabilities, tags, threshold)
    figures["tag_ece"] = marginal_ece(probabilities, tags)
    if temperatures is not None:
        scaled = logits.double()
        per_tag = torch.as_tensor(temperatures.per_tag, dtype=scaled.dtype)
        figures["tag_ece_scaled"] = marginal_ece(torch.sigmoid(scaled / temperatures.one), tags)
        figures["tag_ece_per_tag"] = marginal_ece(torch.sigmoid(scaled / per_tag), tags)
    return figures


def degenerate_tag_sets(probabilities: Tensor, tags: Tensor, threshold: float) -> dict[str, Any] | None:
    """What makes a split's tag sets at ``threshold`` say little more than "every tag", or None
    where they do not: most of its rows (more than :data:`DEGENERATE_ROWS`) given more than half
    of the tags each does not carry. Then ``rows`` (that share), ``tags_per_row`` (given, on
    average), ``carried_per_row``, ``tags`` (how many there are), ``probabilities`` (their lowest
    and highest) and ``threshold``."""
    given = probabilities >= threshold
    absent = ~tags.bool()
    most = 2 * (given & absent).sum(dim=1) > absent.sum(dim=1)
    share = float(most.double().mean()) if len(most) else 0.0
    if share <= DEGENERATE_ROWS:
        return None
    finite = probabilities[torch.isfinite(probabilities)]
    return {
        "rows": share,
        "tags_per_row": float(given.sum(dim=1).double().mean()),
        "carried_per_row": float((~absent).sum(dim=1).double().mean()),
        "tags": int(tags.shape[1]),
        "probabilities": [float(finite.min()), float(finite.max())] if len(finite) else None,
        "threshold": float(threshold),
    }


def degenerate_tag_sets_warning(facts: dict[str, Any]) -> str:
    """The warning of :func:`degenerate_tag_sets`' ``facts`` on a run's selected check."""
    low_high = facts.get("probabilities")
    spread = f"; its tag probabilities all lie in {low_high[0]:.2f}-{low_high[1]:.2f}" if low_high else ""
    return (
        f"its test tag sets are degenerate: at threshold {facts['threshold']:.2f} they give "
        f"{facts['tags_per_row']:.1f} of {facts['tags']} tags per text on average (the texts carry "
        f"{facts['carried_per_row']:.1f}), most of the tags a text does not carry to "
        f"{100 * facts['rows']:.0f} % of the texts{spread}. The network tells too little apart for set "
        "decisions (the ranking figures, mAP and LRAP, say how much it ranks): try more train.epochs, "
        "another train.lr, or more data"
    )


def selected_figures(with_rest: bool) -> tuple[str, ...]:
    """What a summary keeps at the selected check beyond :attr:`MultiLabelText.metrics`: the
    threshold and the one tag temperature, every other test figure (the calibration per tag raw,
    scaled and per tag among them), and the rest's where tags are set apart."""
    shown = MultiLabelText.metrics
    figures = [*(figure.name for figure in MULTI_LABEL_FIGURES), *TEST_CALIBRATION]
    names = [f"test_{figure}" for figure in figures]
    rest = [f"test_rest_{figure}" for figure in figures] if with_rest else []
    return ("tag_threshold", "tag_temperature", *(name for name in names if name not in shown), *rest)


def _data_counts(dataset: Any) -> dict[str, Any]:
    return {
        "vocabulary_size": len(dataset.vocabulary),
        "max_text_tokens": dataset.max_text_tokens,
        "cut_texts": dict(dataset.cut_texts),
        "tags": len(dataset.class_names),
    }
