"""``labelemb.load``: a run folder or an exported bundle, ready to predict."""

from __future__ import annotations

from pathlib import Path

import torch

from .bundle import read_trained
from .network import build_classifier
from .predictor import Predictor
from .source import Checkpoint, PredictError


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
