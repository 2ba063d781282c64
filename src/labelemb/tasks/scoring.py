"""How a task's headline figure reads: its name, unit, direction and how it is drawn.

A task declares one :class:`Scoring` per figure it can be judged by and records the one in use in
every run's summary (``summary["scoring"]``), so the CLI, the comparison tables, the curves and the
report read what a figure is from the run itself, never from the figure's name: a new task's
metric is drawn as that task says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Scoring:
    """A task's headline figure.

    ``metric`` is the summary key of its test value (``test_error``), ``name`` how text calls it
    (``test error``), ``unit`` what follows a value (``%``); ``curve`` is the record key the
    curves figure draws over training (the test error, as the paper does; a text task's dev score,
    which selects its check). ``area`` says what the area under that curve measures: ``accuracy``
    for an error in percent (AUAC over ``1 - error / 100``), ``score`` for a score on its own scale.
    ``labels`` says what the label set is: ``classes`` (heatmaps, WordNet) or a ``vocabulary``.
    ``reported`` are the other test figures the task quotes beside it, as (summary key, name)
    pairs: ROUGE-1 and -2 beside ROUGE-L, macro-F1 beside a text classifier's error.
    """

    metric: str
    name: str
    unit: str
    higher_is_better: bool
    curve: str
    area: Literal["accuracy", "score"]
    labels: Literal["classes", "vocabulary"]
    reported: tuple[tuple[str, str], ...] = ()

    @property
    def score_name(self) -> str:
        """The figure without its split: ``BLEU``, ``ROUGE-L``, ``error``."""
        return self.name.removeprefix("test ")

    def column(self) -> str:
        """How a table heads the figure: ``test error %``, ``test BLEU``."""
        return f"{self.name} {self.unit}".strip()

    def format(self, value: float) -> str:
        """``10.52%``, ``23.41``."""
        return f"{value:.2f}{self.unit}"

    def names(self) -> dict[str, str]:
        """Summary key -> name of this figure and of every figure reported beside it."""
        return {self.metric: self.name, **dict(self.reported)}

    def record(self) -> dict[str, Any]:
        """The summary's ``scoring`` entry (plain JSON)."""
        return {**asdict(self), "reported": [list(pair) for pair in self.reported]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Scoring:
        """The scoring a summary recorded (:meth:`record`)."""
        reported = tuple((key, name) for key, name in record.get("reported", ()))
        return cls(**{**record, "reported": reported})


#: Classification's figure: the test error in percent, lower is better.
TEST_ERROR = Scoring(
    metric="test_error",
    name="test error",
    unit="%",
    higher_is_better=False,
    curve="test_error",
    area="accuracy",
    labels="classes",
)
