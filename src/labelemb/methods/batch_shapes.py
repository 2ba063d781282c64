"""Methods that shape their batches: what a method declares, and the orders that honour it.

A method whose loss needs batches built a certain way (cskd: pairs of examples of the same class)
declares it as a class attribute, ``batch_shape`` (:attr:`labelemb.methods.base.Method.batch_shape`),
an instance of a :class:`BatchShape`. The training loop asks its task for the epoch's order as
always and hands it to the shape (:meth:`BatchShape.arrange`) with the training split's labels:
each example the order draws becomes ``rows_per_example`` consecutive rows (the example first), so
a batch of ``batch_size`` drawn examples has ``batch_size * rows_per_example`` rows, and the epoch
still draws every example once. Everything the shape draws is a function of (seed, epoch), so a
killed run resumes with the order it would have had; processes of one run (torchrun) share the
rows of a batch out by whole groups.

A trainer that builds its own batches (a Hugging Face ``Trainer``, a Lightning ``Trainer``) cannot
honour a shape: the adapters refuse such a method with :meth:`BatchShape.refusal`.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import torch
from torch import Tensor


def shape_generator(name: str, seed: int, epoch: int) -> torch.Generator:
    """A CPU generator of its own for each (shape, seed, epoch): independent of the order's draws."""
    digest = hashlib.blake2b(f"{name}:{seed}:{epoch}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class BatchShape:
    """How a method needs its training batches built (see the module's notes)."""

    #: Short name, in messages and in the draws' seed.
    name: ClassVar[str] = ""
    #: Rows of a batch for each example the epoch's order draws.
    rows_per_example: ClassVar[int] = 1
    #: What the shape builds, for messages ("pairs of examples of the same class").
    builds: ClassVar[str] = ""

    def arrange(self, order: Tensor, labels: Tensor, seed: int, epoch: int) -> Tensor:
        """The rows of the epoch, ``(len(order) * rows_per_example,)``, from the task's ``order``
        of the training split and its ``(N,)`` class labels; a function of (seed, epoch)."""
        raise NotImplementedError

    def refusal(self, method: str, trainer: str) -> str:
        """The one line with which a trainer that builds its own batches refuses the method."""
        return (
            f"method {method!r} needs batches of {self.builds}, which labelemb's training loop builds "
            f"and {trainer} does not: train it with `labelemb train` (or labelemb.training.train)"
        )


class ClassPairs(BatchShape):
    """Each drawn example followed by one other example of its class, drawn uniformly at random
    (the example itself when it is its class's only one): rows ``2k`` and ``2k + 1`` are a pair.

    Yun et al. (2020)'s sampler, whose batches are the drawn examples and then their partners.
    """

    name = "class_pairs"
    rows_per_example = 2
    builds = "pairs of examples of the same class"

    def arrange(self, order: Tensor, labels: Tensor, seed: int, epoch: int) -> Tensor:
        order = order.cpu().long()
        labels = labels.reshape(-1).cpu().long()
        if labels.shape[0] < 1 or labels.min() < 0:
            raise ValueError(f"{self.builds} need one class label (>= 0) per training example")
        partner = class_partners(labels, order, shape_generator(self.name, seed, epoch))
        return torch.stack([order, partner], dim=-1).reshape(-1)


def refuse_batch_shape(method: Any, trainer: str) -> None:
    """Raise, in one line, if ``method`` shapes its batches: ``trainer`` builds its own."""
    shape = getattr(method, "batch_shape", None)
    if shape is not None:
        raise ValueError(shape.refusal(getattr(method, "name", "") or type(method).__name__, trainer))


def class_partners(labels: Tensor, drawn: Tensor, generator: torch.Generator) -> Tensor:
    """For each example of ``drawn``, another example of the same class, uniformly at random."""
    by_class = torch.argsort(labels, stable=True)  # the examples, grouped by class
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)  # each example's place within its class's group
    rank[by_class] = torch.arange(labels.shape[0]) - starts[labels[by_class]]
    classes = labels[drawn]
    others = counts[classes] - 1
    pick = (torch.rand(drawn.shape, generator=generator, dtype=torch.float64) * others).long()
    pick = torch.minimum(pick, (others - 1).clamp(min=0))  # guards a draw of exactly 1.0 after rounding
    # Skip the example itself: places at or past its own move one up.
    place = torch.where(others > 0, pick + (pick >= rank[drawn]).long(), rank[drawn])
    return by_class[starts[classes] + place]
