"""The rows the tests of the issue-59 peers compute their losses on by hand, and a method on them
whose output layer is the identity, so that its features are its logits.

Row 0 has its gold class on top; row 1 third (the class ranked just below it is not the top one);
rows 2 and 4 on top; row 3 last (no class below it). Against a margin of 1 the largest logits lie
above and below it and the gaps to them on both sides; no row ties for its largest logit.

The test files share these (``from peer_checks import identity_head``): tests/ is on the path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from labelemb import methods

M = 4
LOGITS = [
    [3.0, 0.5, -1.0, 0.2],
    [0.1, 0.3, 2.5, -0.4],
    [-1.0, 2.0, 0.5, 0.0],
    [4.0, -2.0, -1.0, 0.0],
    [0.3, -0.2, 0.1, 0.8],
]
TARGETS = [0, 0, 1, 1, 3]
#: A loss and its gradient in the logits, computed by hand from the logits, the labels and options.
HandComputation = Callable[..., tuple[float, np.ndarray]]
#: The same rows with the second one ignored: a hand computation leaves it out.
IGNORING = [0, -100, 1, 1, 3]


def identity_head(name: str, **options) -> methods.Method:
    """Method ``name`` on m-wide float64 features whose output layer is the identity."""
    head = methods.build(name, in_features=M, num_classes=M, **options).double()
    with torch.no_grad():
        head.output.weight.copy_(torch.eye(M))
        head.output.bias.zero_()
    return head


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def step(head: methods.Method, logits=LOGITS, targets=TARGETS) -> tuple[methods.MethodOutput, np.ndarray]:
    """The method's step on ``logits`` and the gradient of its loss in them."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    out = head(z, torch.tensor(targets))
    (grad,) = torch.autograd.grad(out.loss, z)
    return out, grad.numpy()


def batch_by_hand(
    hand_batch: HandComputation, logits=LOGITS, targets=TARGETS, **options
) -> tuple[float, np.ndarray]:
    """``hand_batch(z, y, **options)`` (a loss and its gradient in ``z``) over the rows that are not
    ignored; the gradient of every row, 0 for the ignored ones."""
    kept = [i for i, y in enumerate(targets) if y != -100]
    z, y = np.array([logits[i] for i in kept]), np.array([targets[i] for i in kept])
    loss, grads = hand_batch(z, y, **options)
    full = np.zeros((len(logits), M))
    full[kept] = grads
    return loss, full


def mean_of_rows(hand_row: HandComputation) -> HandComputation:
    """A batch's hand computation from one row's: the mean loss and the gradient of the mean."""

    def batch(z: np.ndarray, y: np.ndarray, **options) -> tuple[float, np.ndarray]:
        rows = [hand_row(row, label, **options) for row, label in zip(z, y)]
        return float(np.mean([loss for loss, _ in rows])), np.stack([grad for _, grad in rows]) / len(rows)

    return batch


def assert_step_is(out: methods.MethodOutput, grad: np.ndarray, loss: float, expected: np.ndarray) -> None:
    """The step's loss and gradient are the hand computation's, to float64 rounding."""
    assert abs(out.loss.item() - loss) <= 1e-12 * abs(loss), (out.loss.item(), loss)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
