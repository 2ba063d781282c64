"""Extended logit normalisation (ELogitNorm): cross-entropy on the logits divided by the feature's
mean distance to the decision boundaries of its predicted class."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .registry import register

#: Added to the mean distance before dividing (our choice; the authors' code adds none): a row whose
#: logits are all equal has distance 0 to every boundary, and its loss stays finite.
DISTANCE_EPS = 1e-7


def boundary_distances(weight: Tensor) -> Tensor:
    """||w_i - w_j|| for every pair of classes, ``(..., m, m)`` from ``weight`` ``(..., m, d)`` (one
    seed's head or each of a stack's), with 1 on the diagonal (a class has no boundary with itself:
    its term below is 0 / 1, as in the authors' code). Through the Gram matrix, so an (m, m, d)
    tensor of differences is never held; a squared distance that rounding takes below 0 is 0."""
    gram = weight @ weight.transpose(-1, -2)
    squares = gram.diagonal(dim1=-2, dim2=-1)
    squared = (squares.unsqueeze(-1) + squares.unsqueeze(-2) - 2.0 * gram).clamp(min=0.0)
    eye = torch.eye(weight.shape[-2], dtype=torch.bool, device=weight.device)
    # sqrt of the clamped diagonal is never taken: its gradient there would be 1 / 0.
    return torch.where(eye, 1.0, squared.where(~eye, 1.0).sqrt())


def mean_boundary_distance(logits: Tensor, weight: Tensor) -> Tensor:
    """Each row's mean distance to the boundaries of its predicted class c = argmax z, for a linear
    head z = W h + b (weight ``(..., m, d)``, logits ``(..., N, m)``)::

        D(h) = (1 / m) sum_k |z_c - z_k| / ||w_c - w_k||

    |z_c - z_k| / ||w_c - w_k|| is the distance from h to the hyperplane where classes c and k tie;
    the k = c term is 0, and the sum is divided by m, as in the authors' code; a class whose weight
    row equals w_c (no hyperplane) adds 0. ``(..., N, 1)``."""
    top, predicted = logits.max(dim=-1, keepdim=True)
    distances = boundary_distances(weight)
    # Row n's distances from its predicted class: distances[..., c_n, :].
    own = distances.gather(-2, predicted.expand(logits.shape))
    # Two classes of equal weight rows have no boundary in feature space: their term is 0 (ours;
    # the authors' code divides by 0 there). The denominator is made safe first, so that no 0 / 0
    # reaches the backward pass either.
    apart = own > 0
    terms = torch.where(apart, (top - logits).abs() / torch.where(apart, own, 1.0), 0.0)
    return terms.mean(dim=-1, keepdim=True)


@register("elogitnorm")
class ELogitNorm(Stackable, LinearOutputMethod):
    """Cross-entropy on the logits divided by the feature's mean distance to the decision
    boundaries, for a linear head z = W h + b with rows w_k::

        D = (1 / m) sum_k |z_c - z_k| / ||w_c - w_k||,   c = argmax z,
        L = H(y, softmax(z / (D + eps))),   eps = 1e-7

    Ding, Liu, Unger & Eilertsen (CVPR 2026), "Enhancing out-of-distribution detection with
    extended logit normalization" (arXiv 2504.11434), Section 3: LogitNorm's scale tau ||z|| (the
    distance to the origin) replaced by the distance to the boundaries, with no hyperparameter.
    Nothing is detached: the gradient reaches W through D, as in the authors' code; ``eps`` is ours.

    Prediction: the raw logits ``z`` (the normalisation is a training loss only), as LogitNorm's.
    ``boundary_distance`` (the mean D) is logged beside the loss (weight 0 in it).

    Class rows only: D needs the pairwise distances of the m classes' weight rows (m x m).
    """

    serves: ClassVar[frozenset[str]] = frozenset({"class"})
    cannot_serve: ClassVar[dict[str, str]] = {
        "token": "its scale needs the distances between every pair of the m classes' weight rows "
        "(m x m: a vocabulary's is too large)",
        "tags": (
            "its scale is the distance to the decision boundaries between the predicted class (argmax "
            "z) and each other class of one softmax; independent tags have no one predicted class"
        ),
    }
    #: Hyperparameter-free: tuning searches only the shared keys (train.lr, ...).
    search_space: ClassVar[dict[str, Space]] = {}

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        distance = mean_boundary_distance(logits, self.output.weight)
        scaled = logits / (distance + DISTANCE_EPS)
        loss = rows.mean(-gold(F.log_softmax(scaled, dim=-1), rows.label))
        mean_distance = rows.mean(distance.detach().squeeze(-1))
        return MethodOutput(loss, logits, {"normalised_ce": loss, "boundary_distance": mean_distance})
