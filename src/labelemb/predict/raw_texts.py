"""New texts for a run whose representation reads raw text (``model.name: tfidf``): each text's
features from the run's own fitted TF-IDF and SVD, with no word ids in between.

A run of such a model keeps its fitted representation as data (terms, idf weights, SVD directions:
the frozen backbone of its :class:`~labelemb.predict.network.Classifier`); the features it makes
of new texts are the rows the run's head reads, and the classifier passes them through.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .. import models
from ..assembly.tfidf import TfidfFeatures
from .source import PredictError


def reads_raw_texts(model: nn.Module) -> bool:
    """Whether a run's :class:`~labelemb.predict.network.Classifier` reads raw texts (a TF-IDF)."""
    return isinstance(getattr(model, "backbone", None), TfidfFeatures)


def raw_text_features(model: nn.Module, inputs: Any) -> Tensor | None:
    """The features ``(N, d)`` of ``inputs`` (a text or a list of texts) through the classifier's
    fitted representation, which its network then reads as they are; None where the classifier
    reads word ids (every model but ``tfidf``)."""
    if not reads_raw_texts(model):
        return None
    texts = [inputs] if isinstance(inputs, str) else [str(text) for text in inputs]
    return model.backbone(texts)


def fits_texts(config: Any) -> bool:
    """Whether a run of ``config`` reads raw texts through a representation fitted to them (a TF-IDF)."""
    return bool(getattr(models.model_class(config.model.name), "fitted_on_texts", False))


def split_inputs(config: Any, dataset: Any, split: str) -> Any:
    """What a prediction of the run of ``config`` reads for ``split`` of its ``dataset``: the split
    itself, or, for a run that reads raw texts, the split's texts as read (its word ids are no
    input of a TF-IDF)."""
    held = getattr(dataset, split, None)
    if held is None or not fits_texts(config):
        return held
    texts = getattr(dataset, "texts", {}).get(split)
    if texts is None or len(texts) != len(held):
        raise PredictError(
            f"the {split} split of this TF-IDF run's data keeps no raw texts to read; "
            "give its texts with --input instead"
        )
    return list(texts)
