"""The ``tfidf`` representation fitted and cached (:mod:`labelemb.models.tfidf` names it).

A run of ``model.name: tfidf`` reads its data set's raw texts: their TF-IDF comes from the TF-IDF
cache (:func:`~labelemb.data.text.tfidf.tfidf_matrices`, the vectorizer fitted on train alone),
the SVD's directions from a cache file of their own (keyed by the TF-IDF's key, the width and the
iterations: seeded, so the same on every machine), and each split's features ``X V^T`` from the
feature cache, under the same keys and checks as a frozen backbone's. :class:`TfidfFeatures` is
the fitted representation as a module of data (terms, idf weights, SVD directions as buffers):
what turns new texts into the run's features (``labelemb predict``), what an exported bundle
saves; nothing in it is code.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import models
from ..data.base import DataError
from ..data.cache_files import build_once
from ..data.feature_cache import (
    backbone_digest,
    cached_features,
    read_features,
    split_key,
    write_features,
)
from ..data.text.options import TfidfOptions
from ..data.text.tfidf import FittedTfidf, TfidfMatrices, tfidf_matrices
from ..options import read_options
from .parts import Backbone, FrozenFeatures

SPLIT_NAMES = ("train", "dev", "test")
#: The seed of the randomised SVD (the same directions on every run of a data set).
SVD_SEED = 0


def vectorizer_options(backbone: Backbone) -> TfidfOptions:
    """The checked ``model.vectorizer`` of a ``tfidf`` backbone (one line per mistake)."""
    options = read_options(TfidfOptions, backbone.options.get("vectorizer"), "model.vectorizer")
    options.check()
    return options


def model_settings(backbone: Backbone) -> dict[str, Any]:
    """A ``tfidf`` backbone's options over the model's defaults."""
    return {**models.model_options(backbone.name), **backbone.options}


def svd_settings(backbone: Backbone) -> tuple[int, int]:
    """The SVD's width and power iterations a ``tfidf`` backbone asks for."""
    options = model_settings(backbone)
    return int(options["components"]), int(options["svd_iterations"])


def learned_terms(backbone: Backbone) -> int | None:
    """The entries a text keeps where a ``tfidf`` backbone's projection is learned, else None."""
    options = model_settings(backbone)
    return int(options["max_terms"]) if options["projection"] == "learned" else None


def term_entries(matrix: Any, max_terms: int) -> Tensor:
    """Each row's ``max_terms`` heaviest TF-IDF entries, float32 ``(N, max_terms, 2)``: the term's
    column (exact in float32: :class:`~labelemb.models.term_bag.TermBag` holds fewer than 2^24
    terms) and its weight, heaviest first (ties by column); padded with column ``V`` (the
    matrix's width), weight 0."""
    matrix = matrix.tocsr()
    count, width = matrix.shape
    per_row = np.diff(matrix.indptr)
    row_of = np.repeat(np.arange(count), per_row)
    order = np.lexsort((matrix.indices, -matrix.data, row_of))
    position = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], per_row)
    kept = position < max_terms
    entries = np.zeros((count, max_terms, 2), dtype=np.float32)
    entries[:, :, 0] = width
    rows, slots = row_of[kept], position[kept]
    entries[rows, slots, 0] = matrix.indices[order][kept]
    entries[rows, slots, 1] = matrix.data[order][kept]
    return torch.from_numpy(entries)


class TfidfFeatures(nn.Module):
    """A fitted TF-IDF and its SVD as a module of buffers: texts (a list of strings) -> float32
    features ``(N, components)``, the TF-IDF in the vectorizer's columns times the directions; or,
    for a learned projection (``max_terms`` given, no directions), each text's TF-IDF entries
    ``(N, max_terms, 2)`` (:func:`term_entries`), which the run's trained head projects."""

    def __init__(
        self,
        options: TfidfOptions,
        fitted: FittedTfidf | None = None,
        directions: Tensor | None = None,
        *,
        max_terms: int | None = None,
        missing: str | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.max_terms = max_terms
        #: Why an empty module (no fitted buffers) could not be fitted here, for its error.
        self.missing = missing
        tensors = (fitted or FittedTfidf(options, [], np.zeros(0))).tensors()
        self.register_buffer("terms", tensors["tfidf.terms"])
        self.register_buffer("idf", tensors["tfidf.idf"])
        self.register_buffer("directions", directions if directions is not None else torch.zeros(0, 0))
        self.out_features = int(self.directions.shape[0])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # A module built before its data is read is empty: take the saved buffers' shapes.
        for name in ("terms", "idf", "directions"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        self.out_features = int(self.directions.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args)

    def fitted(self) -> FittedTfidf:
        """The vectorizer these buffers hold."""
        return FittedTfidf.from_tensors(self.options, {"tfidf.terms": self.terms, "tfidf.idf": self.idf})

    def forward(self, texts: list[str] | Tensor) -> Tensor:
        if isinstance(texts, Tensor):
            if self._made_here(texts):
                # Features this module made already: a prediction's rows, batched after the texts.
                return texts.float()
            # Word ids (a text split read for another model) are no texts: refuse, never project them.
            raise TypeError(
                f"model tfidf reads raw texts (a list of strings), not a {texts.dtype} tensor of shape "
                f"{tuple(texts.shape)}; give the texts themselves"
            )
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("model tfidf reads a list of texts (strings)")
        fitted = self.fitted()
        if not fitted.terms:
            raise DataError(
                "model tfidf: this run's fitted TF-IDF is not here and its training data could not be "
                f"read to fit it again ({self.missing}); predict from an exported bundle, which keeps it"
            )
        matrix = fitted.transform(list(texts))
        if self.max_terms is not None:
            return term_entries(matrix, self.max_terms)
        return project(matrix, self.directions)

    def _made_here(self, inputs: Tensor) -> bool:
        """Whether ``inputs`` are what this module makes (features, or entries), not texts."""
        if not inputs.is_floating_point():
            return False
        if self.max_terms is not None:
            return inputs.dim() == 3 and tuple(inputs.shape[1:]) == (self.max_terms, 2)
        return inputs.dim() == 2 and inputs.shape[1] == self.out_features


def project(matrix: Any, directions: Tensor) -> Tensor:
    """``matrix`` (scipy CSR, ``(N, V)``) times ``directions`` transposed: float32 ``(N, k)``."""
    dense = matrix @ directions.detach().cpu().numpy().T
    return torch.from_numpy(np.ascontiguousarray(dense, dtype=np.float32))


def fitted_tfidf(part: FrozenFeatures, dataset: Any) -> tuple[TfidfFeatures, TfidfMatrices, dict[str, Any]]:
    """The fitted representation of ``part`` (a ``tfidf`` backbone) on ``dataset``'s texts, its
    TF-IDF matrices, and what the run's summary records of the caches."""
    options = vectorizer_options(part.backbone)
    matrices = tfidf_matrices(dataset, options, part.cache_dir, progress=part.progress)
    record: dict[str, Any] = {
        "tfidf": {
            "terms": matrices.vectorizer.width,
            "file": str(matrices.path),
            "reused": matrices.reused,
            "seconds": matrices.seconds,
        }
    }
    max_terms = learned_terms(part.backbone)
    if max_terms is not None:
        record["entries"] = {"max_terms": max_terms}
        return TfidfFeatures(options, matrices.vectorizer, max_terms=max_terms), matrices, record
    directions, record["svd"] = svd_of(part, matrices)
    return TfidfFeatures(options, matrices.vectorizer, directions), matrices, record


def svd_of(part: FrozenFeatures, matrices: TfidfMatrices) -> tuple[Tensor, dict[str, Any]]:
    """The SVD's directions of ``matrices``' training TF-IDF (cached) and what the summary records."""
    components, iterations = svd_settings(part.backbone)
    started = time.perf_counter()
    width = matrices.vectorizer.width
    if components > width:
        raise DataError(
            f"model tfidf: components {components} is more than the {width:,} terms of the training "
            f"texts; set model.components to at most {width}"
        )
    key = _svd_key(matrices.key, components, iterations)
    path = matrices.path.with_name(f"tfidf-svd-{key[:32]}.safetensors")
    directions, reused = _cached_directions(path, key, components, width, matrices, iterations, part.progress)
    seconds = round(time.perf_counter() - started, 3)
    return directions, {"components": components, "reused": reused, "seconds": seconds}


def _svd_key(tfidf_key: str, components: int, iterations: int) -> str:
    described = {"tfidf": tfidf_key, "components": components, "iterations": iterations, "seed": SVD_SEED}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _cached_directions(
    path: Path,
    key: str,
    components: int,
    width: int,
    matrices: TfidfMatrices,
    iterations: int,
    progress: bool,
) -> tuple[Tensor, bool]:
    """The SVD's directions ``(components, terms)``, read from ``path`` or computed and written there
    (the feature cache's file rules: key and checksum checked, written whole)."""
    found, _ = read_features(path, key, components)
    if found is not None and found.shape[1] == width:
        return found, True

    def read() -> Tensor | None:
        again, _ = read_features(path, key, components)
        return again if again is not None and again.shape[1] == width else None

    def build() -> Tensor:
        directions = svd_directions(matrices.train, components, iterations)
        write_features(path, key, directions)
        return directions

    return build_once(path, "TF-IDF SVD cache", read, build, progress=progress)


def svd_directions(train: Any, components: int, iterations: int) -> Tensor:
    """The ``components`` leading right singular vectors of the training TF-IDF (scikit-learn's
    randomised ``TruncatedSVD``, seeded), float32 ``(components, terms)``."""
    from sklearn.decomposition import TruncatedSVD  # lazy: scikit-learn

    svd = TruncatedSVD(components, algorithm="randomized", n_iter=iterations, random_state=SVD_SEED)
    svd.fit(train)
    return torch.from_numpy(np.ascontiguousarray(svd.components_, dtype=np.float32))


def split_features(
    module: TfidfFeatures, matrices: TfidfMatrices, folder: Path, progress: bool
) -> dict[str, Any]:
    """Each split's features ``X V^T`` through the feature cache, and whether each was read."""
    digest = backbone_digest({"model": "tfidf"}, module.state_dict())
    out: dict[str, Any] = {}
    for name in SPLIT_NAMES:
        matrix = getattr(matrices, name)
        if matrix is None:
            continue
        started = time.perf_counter()
        key = split_key(
            digest,
            [
                torch.from_numpy(np.asarray(matrix.indptr)),
                torch.from_numpy(matrix.indices),
                torch.from_numpy(matrix.data),
            ],
        )
        features, reused = cached_features(
            folder,
            key,
            matrix.shape[0],
            partial(project, matrix, module.directions),
            label=f"tfidf features of {name}",
            progress=progress,
        )
        out[name] = (features, {"reused": reused, "seconds": round(time.perf_counter() - started, 3)})
    return out
