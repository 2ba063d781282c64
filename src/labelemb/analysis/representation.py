"""The label representation of any run, so that every method can be compared on one footing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..assembly import build_network, load_run_data
from ..config import RunConfig
from ..data import DataError
from ..rundir import MAX_SAVED_REPRESENTATION, TENSORS_FILE, RunDir
from ..tasks import Predictor, build_task
from ..tasks.registry import recorded_scoring


@dataclass
class LabelRepresentation:
    """An (m x d) matrix with one row per label, the run's class names and where it came from."""

    matrix: Tensor
    class_names: list[str]
    method: str
    source: str  # "learned" (the method's own) or "mean softmax on <split>"
    dataset: str
    seed: int
    #: A text task's run (labels are the target vocabulary's words, BLEU or ROUGE its score).
    text: bool = False

    def header(self, names: list[str]) -> dict[str, Any]:
        """What an analysis of ``names`` among this representation's labels records first: whose
        representation it is, and which labels."""
        return {
            "method": self.method,
            "seed": self.seed,
            "dataset": self.dataset,
            "source": self.source,
            "classes": list(names),
        }


def mean_softmax_representation(run_dir: Path, data_dir: str | None = None) -> tuple[Tensor, str]:
    """Per-class mean of the saved model's softmax output on the dev split (test if none).

    Runs finished since every run saves its representation never need this; older runs of
    methods that learn none (onehot, the smoothing methods) are read off their saved model, by
    the task of their data.
    """
    folder = RunDir(run_dir)
    config = folder.read_valid_config(RunConfig)
    if data_dir:
        config = config.model_copy(update={"data": config.data.model_copy(update={"dir": data_dir})})
    try:
        dataset = load_run_data(config)
    except DataError as error:
        raise DataError(
            f"{run_dir} ({config.method.name}) was trained before runs saved a label representation "
            f"for methods that learn none, so it is computed from the model's predictions on the "
            f"{config.data.name} data, which could not be loaded: {error}"
        ) from None
    model, method = build_network(config, dataset)
    network = torch.nn.ModuleDict({"model": model, "method": method})
    network.load_state_dict(folder.read_weights())
    predict = Predictor(network, model, method)
    return build_task(config, dataset).label_representation(
        predict, dataset.dev, dataset.test, dataset.num_classes
    )


class NoRepresentation(ValueError):
    """A text run that has no label representation; ``reason`` says why in one sentence."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_text_run(summary: dict[str, Any]) -> bool:
    """Whether a run's summary is of a text task (scored by BLEU or ROUGE, not by a test error)."""
    return recorded_scoring(summary).labels == "vocabulary"


def _no_text_representation(run_dir: Path, summary: dict[str, Any]) -> NoRepresentation:
    """Why a text run has no label representation, and what to run instead.

    Its mean softmax cannot be recomputed as an image run's is: that reads the model's
    predictions on the data, which for a text run means the whole corpus and an m x m matrix.
    """
    method, labels = summary["method"], len(summary["class_names"])
    saved = summary.get("representation_source")
    if saved:  # written when the run ended, and gone since
        reason = f"the label representation this run saved ({saved}) is missing: it has no {TENSORS_FILE}"
        return NoRepresentation(f"{run_dir}: {reason}; train the run again to have it", reason + ".")
    if labels > MAX_SAVED_REPRESENTATION:
        reason = (
            f"{method} learns no label representation, and above {MAX_SAVED_REPRESENTATION:,} labels "
            f"(this run has {labels:,}) no mean softmax of its predictions is saved in its place"
        )
        instead = (
            f"or train {method} with data.text.vocabulary_size={MAX_SAVED_REPRESENTATION} or less, "
            "whose run saves the mean softmax over the dev target tokens"
        )
    else:
        reason = f"{method} learns no label representation, and this run saved none in its place"
        instead = f"or train {method} again: a text run now saves the mean softmax over its dev target tokens"
    message = (
        f"{run_dir} ({summary.get('dataset', 'text')}): {reason}. "
        "For the nearest words of a learned embedding, train label_embedding with the same config "
        "(`labelemb train --config CONFIG --method label_embedding`) and run `labelemb similar` on "
        f"that run, {instead}."
    )
    return NoRepresentation(message, reason + ".")


def run_representation(run_dir: str | Path, data_dir: str | None = None) -> LabelRepresentation:
    """The run's saved representation, or the mean softmax of its model for methods without one.

    An image run from before every run saved one gets its mean softmax computed from the data; a
    text run without one raises :class:`NoRepresentation`.
    """
    run_dir = Path(run_dir)
    folder = RunDir(run_dir)
    summary = folder.read_summary(required=("class_names",))
    tensors = folder.read_tensors()
    if "representation" in tensors:
        matrix, source = tensors["representation"], summary.get("representation_source", "learned")
    elif is_text_run(summary):
        raise _no_text_representation(run_dir, summary)
    else:
        matrix, source = mean_softmax_representation(run_dir, data_dir)
    return LabelRepresentation(
        matrix=matrix.float(),
        class_names=list(summary["class_names"]),
        method=summary["method"],
        source=source,
        dataset=summary.get("dataset", ""),
        seed=summary.get("seed", 0),
        text=is_text_run(summary),
    )


def soft_label_rows(run_dir: str | Path, labels: list[int]) -> Tensor | None:
    """``softmax(e)`` of ``labels`` from a run's compressed embedding, (len(labels), m); None if it has none.

    ``e = ReLU(A[y] B + c)`` is formed for the asked labels only, from the saved weights: with a
    vocabulary of tens of thousands the m x m soft-label table is never built (its run saves
    the codes ``A`` as its representation instead).
    """
    weights = RunDir(run_dir).read_weights()
    names = ("method.codes", "method.expand.weight", "method.expand.bias")
    if not all(name in weights for name in names):
        return None
    codes, weight, bias = (weights[name].float() for name in names)
    rows = torch.relu(torch.nn.functional.linear(codes[labels], weight, bias))
    return torch.softmax(rows, dim=-1)
