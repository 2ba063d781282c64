"""How well a learned label representation agrees with WordNet (Yu & Verma 2022, Section 5, Eq. 4).

For each class c_i, LwAL compares two rank vectors over the *other* classes: the WordNet
shortest-path distances d_WN(c_i, c_j) and the distances d(c_i, c_j) between the learned label
vectors, by Kendall's tau-b, and averages over the classes:

    corr = 1/N sum_i tau_b(d_WN(c_i), d(c_i))                                    (Eq. 4)

Only classes that map to a WordNet noun synset take part (Fashion-MNIST: 8 of 10; CIFAR-10: 10
of 10; CIFAR-100: 100 of 100 here); the mappings are in :mod:`labelemb.analysis.wordnet_synsets`,
and WordNet itself is read by :mod:`labelemb.analysis.wordnet_corpus`.

``nltk`` is an optional dependency: ``pip install "labelemb[wordnet]"``. Everything except the
WordNet look-ups (:func:`as_vectors`, :func:`semantic_correlation` with an explicit ``reference``
matrix) works without it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import Tensor

from .wordnet_corpus import wordnet_reader
from .wordnet_synsets import mapped_synsets

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

__all__ = ["as_vectors", "semantic_correlation", "wordnet_distances"]


# ------------------------------------------------------------------------- WordNet distances


def wordnet_distances(
    class_names: Sequence[str],
    dataset: str | Mapping[str, str],
    *,
    reader: WordNetCorpusReader | None = None,
) -> tuple[list[str], np.ndarray]:
    """Shortest-path distances in WordNet between the mappable classes of ``class_names``.

    Returns the kept class names (in their order) and a symmetric (k, k) float matrix of
    ``synset.shortest_path_distance(other)``: the fewest hypernym/hyponym edges between the two
    synsets, as in LwAL's code. All our synsets are nouns, which share the root entity.n.01, so
    no simulated root is needed (NLTK's default, ``simulate_root=False``); a pair that still had
    no path (possible only with a mapping of your own that mixes parts of speech) is an error.
    ``reader`` defaults to :func:`wordnet_reader`'s.
    """
    kept = mapped_synsets(class_names, dataset)
    wn = reader if reader is not None else wordnet_reader()
    names = list(kept)
    synsets = [wn.synset(kept[n]) for n in names]
    k = len(names)
    dist = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            d = synsets[i].shortest_path_distance(synsets[j])
            if d is None:
                raise ValueError(f"no WordNet path between {synsets[i].name()} and {synsets[j].name()}")
            dist[i, j] = dist[j, i] = d
    return names, dist


# ------------------------------------------------------------------------- the correlation


def as_vectors(similarity: Tensor | np.ndarray) -> Tensor:
    """Label vectors from an m x m label similarity, the "standard (eigendecomposition) way".

    LwAL turned the Label Embedding Network's similarity matrix into vectors this way before
    measuring distances. Here: S is symmetrised, (S + S^T) / 2, read as a Gram matrix and
    factored, S = U diag(l) U^T; row i of U diag(sqrt(max(l, 0))) is class i's vector (as in
    classical MDS). For a positive semi-definite S the Euclidean distance between rows i and j
    is sqrt(S_ii + S_jj - 2 S_ij); negative eigenvalues (S not PSD) are clipped to 0, which is
    the closest PSD matrix. LwAL also rescaled S to [0, 1] first; for a PSD S that multiplies
    every distance by one constant, which no rank correlation sees, so it is not done here.
    Returns an (m, m) float64 tensor.
    """
    s = torch.as_tensor(similarity).detach().to(dtype=torch.float64, device="cpu")
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"a similarity matrix must be square, got shape {tuple(s.shape)}")
    s = (s + s.T) / 2
    eigvals, eigvecs = torch.linalg.eigh(s)
    return eigvecs * eigvals.clamp(min=0).sqrt()


def _distances(rep: Tensor, metric: str) -> Tensor:
    if metric == "precomputed":
        if rep.ndim != 2 or rep.shape[0] != rep.shape[1]:
            raise ValueError(f"metric='precomputed' needs a square distance matrix, got {tuple(rep.shape)}")
        return rep
    if rep.ndim != 2:
        raise ValueError(f"a label representation must be (classes, dim), got shape {tuple(rep.shape)}")
    if metric == "euclidean":
        return torch.cdist(rep, rep, compute_mode="donot_use_mm_for_euclid_dist")
    if metric == "cosine":
        unit = torch.nn.functional.normalize(rep, dim=1)
        return 1 - unit @ unit.T
    raise ValueError(f"unknown metric {metric!r}: use 'euclidean', 'cosine' or 'precomputed'")


def semantic_correlation(
    representation: Tensor | np.ndarray,
    class_names: Sequence[str],
    dataset: str | Mapping[str, str] | None,
    metric: str = "euclidean",
    *,
    reference: np.ndarray | Sequence[Sequence[float]] | None = None,
    reader: WordNetCorpusReader | None = None,
) -> dict[str, Any]:
    """LwAL's semantic correlation score (Eq. 4) between a label representation and WordNet.

    ``representation`` is one row per class of ``class_names`` (m x d label vectors, e.g. a
    method's ``label_representation()``; for a similarity matrix pass :func:`as_vectors` of it,
    as LwAL did). Rows of classes that do not map to WordNet are dropped first. Distances
    between rows: ``"euclidean"`` (LwAL's choice), ``"cosine"`` (1 - cosine similarity), or
    ``"precomputed"`` when ``representation`` already is an m x m distance matrix (row i used as
    given).

    For each kept class i, the WordNet distances to the other kept classes and the
    representation distances to them are compared by Kendall's tau-b (ties in either vector
    are allowed, as WordNet distances have many); the score is the mean over classes. A tau
    that is undefined (one of the vectors is constant) is reported as NaN and left out of the
    mean, with a note.

    ``reference`` replaces the WordNet look-up with a given (m x m) distance matrix over all of
    ``class_names`` (then ``dataset`` is not used and NLTK is not needed).

    Returns ``{"mean_tau", "per_class": {name: tau}, "classes", "wordnet_distances",
    "representation_distances", "metric", "excluded", "note"}``, plain Python values.
    """
    rep = torch.as_tensor(representation).detach().to(dtype=torch.float64, device="cpu")
    m = len(class_names)
    if rep.ndim < 1 or rep.shape[0] != m:
        raise ValueError(f"{m} class names for a representation of shape {tuple(rep.shape)}")
    names, index, ref = _reference_distances(class_names, dataset, reference, reader)
    k = len(names)
    if k < 3:
        raise ValueError(f"need at least 3 mappable classes for a rank correlation, have {k}: {names}")

    idx = torch.tensor(index)
    if metric == "precomputed":
        dist = _distances(rep, metric)[idx][:, idx]
    else:
        dist = _distances(rep[idx], metric)
    dist_np = dist.numpy()

    per_class = _per_class_tau(names, ref, dist_np)
    excluded = [n for n, t in per_class.items() if math.isnan(t)]
    valid = [t for t in per_class.values() if not math.isnan(t)]
    mean_tau = float(np.mean(valid)) if valid else float("nan")
    note = ""
    if excluded:
        note = (
            f"tau-b is undefined (a constant distance vector) for {len(excluded)} of {k} classes: "
            f"{excluded}; the mean is over the other {len(valid)}"
        )
    return {
        "mean_tau": mean_tau,
        "per_class": per_class,
        "classes": names,
        "wordnet_distances": ref.tolist(),
        "representation_distances": dist_np.tolist(),
        "metric": metric,
        "excluded": excluded,
        "note": note,
    }


def _reference_distances(
    class_names: Sequence[str],
    dataset: str | Mapping[str, str] | None,
    reference: np.ndarray | Sequence[Sequence[float]] | None,
    reader: WordNetCorpusReader | None,
) -> tuple[list[str], list[int], np.ndarray]:
    """The classes compared (those that map to WordNet, or all with ``reference``), their
    positions in ``class_names``, and the (k x k) reference distances between them."""
    m = len(class_names)
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != (m, m):
            raise ValueError(f"reference must be ({m}, {m}) for {m} classes, got {ref.shape}")
        return list(class_names), list(range(m)), ref
    if dataset is None:
        raise ValueError("give a dataset (or a mapping to synsets), or a reference distance matrix")
    names, ref = wordnet_distances(class_names, dataset, reader=reader)
    position = {name: i for i, name in enumerate(class_names)}
    return names, [position[n] for n in names], ref


def _per_class_tau(names: list[str], ref: np.ndarray, dist: np.ndarray) -> dict[str, float]:
    """Kendall's tau-b of each class's reference distances and representation distances to the
    other classes (NaN where either is constant)."""
    k = len(names)
    per_class: dict[str, float] = {}
    for i, name in enumerate(names):
        others = [j for j in range(k) if j != i]
        with warnings.catch_warnings():
            # scipy warns when an input is constant; the NaN it returns is handled by the caller.
            warnings.simplefilter("ignore")
            tau = kendalltau(ref[i, others], dist[i, others], variant="b").statistic
        per_class[name] = float(tau)
    return per_class
