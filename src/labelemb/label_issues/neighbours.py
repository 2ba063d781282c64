"""A k-nearest-neighbour label vote on a frozen backbone's features (after SimiFeat, Zhu et al.,
ICML 2022): a row whose nearest rows in feature space carry another label is likely wrong.

The detector ``knn_vote`` scores each training row by the share of its ``k`` nearest other training
rows (cosine similarity of the features) that carry its given label: in [0, 1], low where its
neighbours disagree, as cleanlab's label quality is. It reads no model's predictions, only the
features the run's frozen backbone computes (the feature cache's) and the given labels, so it is
out of sample by construction; it is offered where the run freezes its backbone. SimiFeat's own
rule adds random feature transforms and a rank-based vote; this is its plain vote."""

from __future__ import annotations

import numpy as np
import torch

#: The detector's name, beside cleanlab's.
KNN_VOTE = "knn_vote"
#: The neighbours each row's vote counts (SimiFeat's k).
NEIGHBOURS = 10
#: Rows whose similarities are computed at once (a chunk of N similarities each).
CHUNK = 1024


@torch.inference_mode()
def knn_vote(features: torch.Tensor, labels: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Each row's share of its ``k`` nearest other rows (cosine) carrying its label; ``features``
    (N, d), ``labels`` (N,). Fewer rows than ``k + 1``: every other row votes."""
    points = torch.nn.functional.normalize(features.detach().to(torch.float32).cpu(), dim=1)
    given = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    count = min(k, len(points) - 1)
    if count < 1:
        return np.ones(len(points))
    shares = []
    for start in range(0, len(points), CHUNK):
        similar = points[start : start + CHUNK] @ points.T
        rows = torch.arange(start, start + len(similar))
        similar[torch.arange(len(similar)), rows] = -float("inf")  # a row is not its own neighbour
        nearest = similar.topk(count, dim=1).indices
        shares.append((given[nearest] == given[rows, None]).double().mean(dim=1))
    return torch.cat(shares).numpy()
