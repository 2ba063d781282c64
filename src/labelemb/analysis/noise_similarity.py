"""Does a learned label similarity absorb the structure of the noise it was trained on?

A run trained on noisy labels keeps each training example's true and given label
(``label_noise.safetensors``). From them come two matrices over the classes: the transition
``T[i, j]``, the share of true class ``i`` labelled ``j`` (the noise as it was made), and its reverse
``R[j, i]``, the share of the examples labelled ``j`` whose true class is ``i``. Which of the two a
label's row can resemble depends on how the method forms it: the mean softmax of the examples that
carry a label mixes both (the examples of the label's own class, whose outputs lean to where that
class's labels were flipped, and those flipped into it), while label_embedding learns a label's row
from the examples the network predicts as that label, which leans to ``T``. Both are compared, over
the off-diagonal cells only (the diagonal of either is large and says nothing about which classes
are confused): Pearson's and Spearman's correlation (scipy). Where ``T`` is sparse (pair-flip: one
wrong class a row) most of its cells tie at 0, which caps Spearman's; Pearson's then says more.
Under symmetric noise every off-diagonal cell of ``T`` is alike, so there is no structure to find
and no correlation is given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import stats
from torch import Tensor

from ..data.label_noise import realised_matrix
from ..rundir import NOISE_FILE
from .heatmap import draw_similarity_heatmap
from .plotting import plt, save_figure


def noise_matrices(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The ``transition`` and ``reverse`` matrices of a run's training labels (see the module's
    docstring), or None for a run trained on right labels."""
    path = Path(run_dir) / NOISE_FILE
    if not path.is_file():
        return None
    tensors = load_file(str(path))
    clean, noisy = tensors["train_clean"].long().numpy(), tensors["train_noisy"].long().numpy()
    classes = int(tensors["realised"].shape[0])
    return {
        "transition": realised_matrix(clean, noisy, classes),
        "reverse": realised_matrix(noisy, clean, classes),
    }


def off_diagonal_correlation(similarity: Tensor | np.ndarray, matrix: np.ndarray) -> dict[str, float]:
    """Pearson's and Spearman's correlation of the off-diagonal cells of ``similarity`` and
    ``matrix``; NaN where either is constant there (nothing to correlate)."""
    values = np.asarray(
        similarity.float().cpu() if isinstance(similarity, Tensor) else similarity, dtype=float
    )
    off = ~np.eye(values.shape[0], dtype=bool)
    learned, truth = values[off], np.asarray(matrix, dtype=float)[off]
    if np.ptp(learned) == 0 or np.ptp(truth) == 0:
        return {"pearson": math.nan, "spearman": math.nan}
    return {
        "pearson": float(stats.pearsonr(learned, truth).statistic),
        "spearman": float(stats.spearmanr(learned, truth).statistic),
    }


def noise_agreement(similarity: Tensor, matrices: dict[str, np.ndarray], rows: list[int]) -> dict[str, Any]:
    """How closely ``similarity`` (of the labels ``rows``) follows each of ``matrices`` on those
    labels: ``{"transition": {"pearson", "spearman"}, "reverse": {...}}``."""
    return {
        name: off_diagonal_correlation(similarity, matrix[np.ix_(rows, rows)])
        for name, matrix in matrices.items()
    }


def plot_beside_noise(
    similarity: Tensor,
    matrices: dict[str, np.ndarray],
    rows: list[int],
    class_names: list[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """The learned similarity beside the noise's transition and reverse matrices, each on its own
    off-diagonal colour scale (:func:`~.heatmap.draw_similarity_heatmap`)."""
    m = len(rows)
    size = max(3.5, 0.4 * m + 1.2)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 1.5, size))
    panels = [
        ("learned similarity", similarity, None),
        ("transition T: true class i labelled j", matrices["transition"], ("labelled", "true class")),
        ("reverse R: labelled j, true class i", matrices["reverse"], ("true class", "labelled")),
    ]
    for ax, (name, matrix, axis_labels) in zip(axes, panels):
        shown = matrix if isinstance(matrix, Tensor) else torch.from_numpy(matrix[np.ix_(rows, rows)])
        draw_similarity_heatmap(ax, shown, class_names)
        if axis_labels is not None:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
