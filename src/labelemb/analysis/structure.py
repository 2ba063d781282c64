"""The shape of a label representation: average-linkage dendrogram and a 2-D MDS map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import dendrogram, linkage
from scipy.spatial.distance import pdist, squareform
from torch import Tensor

from .plotting import plt, save_figure


def label_distances(matrix: Tensor) -> np.ndarray:
    """Euclidean distances between the label rows (m x m)."""
    return squareform(pdist(matrix.double().cpu().numpy(), metric="euclidean"))


def average_linkage(matrix: Tensor) -> np.ndarray:
    """SciPy's average-linkage tree of the label rows, on their Euclidean distances."""
    return linkage(pdist(matrix.double().cpu().numpy()), method="average")


def plot_dendrogram(matrix: Tensor, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Average-linkage clustering of the label rows (LwAL, Figure 3)."""
    tree = average_linkage(matrix)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(class_names) + 2), 4.0))
    dendrogram(tree, labels=class_names, ax=ax, leaf_rotation=60, color_threshold=0)
    ax.set_ylabel("average-linkage distance")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def mds_coordinates(matrix: Tensor, dims: int = 2) -> np.ndarray:
    """Classical (Torgerson) MDS of the label distances: deterministic, no random start.

    Double-centre the squared distances, ``B = -J D^2 J / 2``, and scale the top eigenvectors of
    ``B`` by the square roots of their (clipped non-negative) eigenvalues.
    """
    squared = label_distances(matrix) ** 2
    m = squared.shape[0]
    centring = np.eye(m) - np.ones((m, m)) / m
    gram = -0.5 * centring @ squared @ centring
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:dims]
    points = vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))
    # eigh's sign is arbitrary; fix it so the same representation always gives the same picture.
    signs = np.sign(points[np.abs(points).argmax(0), range(points.shape[1])])
    return points * np.where(signs == 0, 1.0, signs)


def plot_mds(matrix: Tensor, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """A 2-D map of the labels where near labels have near representations."""
    points = mds_coordinates(matrix)
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    ax.scatter(points[:, 0], points[:, 1], s=18)
    for (x, y), name in zip(points, class_names):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
