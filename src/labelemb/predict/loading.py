"""``labelemb.load``: a run folder or an exported bundle, ready to predict."""

from __future__ import annotations

from pathlib import Path

import torch

from ..rundir import RunDir
from .bundle import read_trained
from .network import build_classifier
from .predictor import Predictor
from .source import Checkpoint, PredictError
from .tags import refuse_tag_sets


def load(
    path: str | Path,
    *,
    checkpoint: Checkpoint = "selected",
    device: str | torch.device = "cpu",
    trust_factory: str | None = None,
) -> Predictor:
    """The trained classifier of a run folder or an exported bundle at ``path``, ready to predict.

    ``checkpoint``: ``selected`` (the weights of the check the run's summary reports; a run still
    training is refused) or ``last`` (its latest weights, also of a run still training).
    ``trust_factory``: a bundle whose backbone is a ``custom`` one is refused unless this names its
    factory (``"package.module:function"``), which is then imported and run: trust only code you
    know. A run folder's config is your own and runs as it trained.
    """
    if checkpoint not in ("selected", "last"):
        raise PredictError(f"checkpoint must be 'selected' or 'last', got {checkpoint!r}")
    trained = read_trained(path, checkpoint, trust_factory)
    return Predictor(trained, build_classifier(trained), device)


def load_single_label(path: str | Path, device: str | torch.device, command: str) -> tuple[RunDir, Predictor]:
    """The folder and the trained classifier of the finished single-label run at ``path``, for
    ``labelemb <command>`` (``evaluate``, ``shift``), which judges a softmax's scores: a run still
    training, a sequence-to-sequence run and a multi-label run are each refused in one line."""
    folder = RunDir(path)
    if not folder.is_finished():
        raise PredictError(f"{folder.path} is not a finished run: {command} it once it has finished")
    predictor = load(folder.path, device=device)
    if predictor.reads not in ("images", "texts"):
        raise PredictError(
            f"{folder.path} is not a classifier: a sequence-to-sequence run has no class scores"
        )
    refuse_tag_sets(
        predictor.trained,
        f"labelemb {command} judges single-label classifiers (their confidence scores and sets are a "
        "softmax's); a multi-label run's figures are those its checks record (summary.json)",
    )
    return folder, predictor
