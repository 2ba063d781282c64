"""Instance-dependent label noise: Xia et al. (NeurIPS 2020), "Part-dependent label noise: towards
instance-dependent label noise", the generator of their Appendix (Algorithm 2) that later papers
reuse.

For each example ``i`` of true class ``y_i`` with input ``x_i`` (flattened):

- its flip rate ``q_i`` is drawn from the normal distribution ``N(rate, std^2)`` truncated to [0, 1];
- ``W_c`` (``d x m``, one per class, entries ``N(0, 1)``) is drawn once;
- ``s = x_i W_{y_i}``, ``s_{y_i} = -inf``, ``p = q_i softmax(s)``, ``p_{y_i} = 1 - q_i``;
- the noisy label is drawn from ``p``.

So how likely an example is flipped, and to which class, depends on the example itself. Departure
from their code: ``x`` is the input as labelemb holds it (pixels in [0, 1], or a frozen backbone's
features), not a normalised tensor, which only changes how peaked ``softmax(s)`` is; the draws come
from one seeded numpy generator, not from numpy's and torch's global ones.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .transitions import check_rate


def instance_flip_probabilities(
    inputs: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    rate: float,
    generator: np.random.Generator,
    std: float = 0.1,
) -> np.ndarray:
    """Each example's distribution over its noisy label, ``(N, m)`` (see the module's notes)."""
    check_rate(rate, "instance-dependent")
    labels = np.asarray(labels, dtype=np.int64)
    flat = np.asarray(inputs, dtype=np.float32).reshape(len(labels), -1)
    flip_rate = stats.truncnorm.rvs(
        (0.0 - rate) / std, (1.0 - rate) / std, loc=rate, scale=std, size=len(labels), random_state=generator
    )
    weights = generator.standard_normal((num_classes, flat.shape[1], num_classes)).astype(np.float32)
    probabilities = np.zeros((len(labels), num_classes), dtype=np.float64)
    for label in range(num_classes):
        # The examples of one class share its matrix: one product per class.
        members = np.flatnonzero(labels == label)
        if members.size == 0:
            continue
        scores = (flat[members] @ weights[label]).astype(np.float64)
        scores[:, label] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        odds = np.exp(scores)
        probabilities[members] = flip_rate[members, None] * odds / odds.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    probabilities[rows, labels] = 1.0 - flip_rate
    return probabilities
