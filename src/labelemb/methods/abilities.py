"""What a method can do beyond the contract, each an opt-in: a mixin a method class lists among its
bases, and the question a trainer asks with ``isinstance`` (or ``issubclass`` of the class).

- :class:`Stackable`: its code also runs on tensors stacked over seeds (the batched trainer);
- :class:`Chunked`: a head worked through chunk by chunk of rows, for large label sets;
- :class:`ReadsDev`: it reads the dev split's predictions at each epoch's end;
- :class:`EpochState`: it keeps state that changes at each epoch's end;
- :class:`MultiHot`: it trains on multi-hot targets, a set of tags per row;
- :class:`PredictsNoisyLabels`: it models the label noise, and predicts a noisy label apart from
  the clean class.

Per-example state (:class:`~labelemb.methods.per_example.PerExampleState`) and gradient
accumulation (:class:`~labelemb.methods.accumulation.GradientAccumulation`) are mixins of their own.

Each ability is also a class attribute, the data a reader sees (``OneHot.stackable`` is True): the
mixin sets it, and a subclass can opt back out by setting it to False (a variant of a stackable
method that is not). The mixin is the one way in: an attribute set to True without it grants
nothing.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from torch import Tensor

from .rows import MethodOutput


class Ability(abc.ABC):  # noqa: B024 (no abstract method: an ability is read through its attribute)
    """An opt-in ability: ``isinstance(method, Ability)`` asks for the mixin among the bases, and
    the class attribute named ``trait`` set to False opts a subclass back out."""

    #: The class attribute that says whether a class has the ability.
    trait: ClassVar[str] = ""

    @classmethod
    def __subclasshook__(cls, other: type) -> Any:
        # Only the abilities themselves answer, and only to say no: a subclass that opted out.
        # Otherwise the usual way, by the bases: the mixin is what grants the ability.
        if "trait" not in cls.__dict__ or not cls.trait or getattr(other, cls.trait, False):
            return NotImplemented
        return False


class Stackable(Ability):
    """Its code also runs on tensors stacked over seeds (``(S, N, d)`` features, every parameter and
    buffer with a leading seed dimension), so that the batched trainer can train many seeds at
    once. A method mixes it in once it is written with the helpers of :mod:`labelemb.stacking` and
    its stacked results are tested against per-seed runs."""

    trait = "stackable"
    stackable: ClassVar[bool] = True


class Chunked(Ability):
    """A head for large label sets worked through chunk by chunk of rows: the method writes
    ``chunking`` (rows per chunk for a batch, None: at once) and ``chunked_loss`` (the step
    ``chunk_rows`` rows at a time), and takes the option ``chunk_size``, so it needs a constructor
    of its own that hands ``**options`` on (see :class:`~labelemb.methods.base.Method`). A
    :class:`~labelemb.methods.base.LinearOutputMethod` has both and writes its loss per row
    instead (``row_loss``, ``row_terms``)."""

    trait = "chunkable"
    chunkable: ClassVar[bool] = True


class ReadsDev(Ability):
    """It reads the dev split's predictions at each epoch's end (:meth:`on_dev_predictions`): a
    trainer without a dev split refuses it."""

    trait = "reads_dev"
    reads_dev: ClassVar[bool] = True

    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        """The dev split's logits ``(N, m)`` and labels ``(N,)`` (stacked: ``(S, N, m)``, ``(S, N)``,
        each seed's own), from the weights at an epoch's end in evaluation mode, before
        ``on_epoch_end``; called, without gradient, for a method that reads the dev split only."""
        raise NotImplementedError


class EpochState(Ability):
    """It keeps state that changes at each epoch's end (:meth:`on_epoch_end`): OLS's soft labels of
    the epoch before, LWR's and PS-KD's recorded predictions, MaxSup's count of epochs. The trainer
    calls it at every epoch's end (after the dev predictions of a method that also reads them) for
    a method with this ability only; a drop-in adapter (Lightning, Hugging Face) calls any
    method's, a no-op without it. A method class that writes its own ``on_epoch_end`` without the
    mixin is refused when it is defined: the trainer would never call it."""

    trait = "epoch_state"
    epoch_state: ClassVar[bool] = True

    def on_epoch_end(self) -> None:
        """Swap the epoch's state (each seed's own, stacked); called once per epoch, without gradient."""
        raise NotImplementedError


class MultiHot(Ability):
    """It trains on multi-hot targets: a ``torch.bool`` tag set per row, ``(N, K)`` (stacked seeds:
    ``(S, N, K)``), True where the row carries tag ``k``, with ``K = num_classes``. ``forward`` takes
    such a target down the multi-hot path (:mod:`labelemb.methods.multi_hot`), which checks its shape
    and calls :meth:`tag_loss`; the kinds of rows the method serves (``serves``) then include
    ``"tags"``. A method without the mixin refuses a tag set with the reason it gives in its
    ``cannot_serve["tags"]``."""

    trait = "multi_hot"
    multi_hot: ClassVar[bool] = True

    def tag_outputs(self, features: Tensor) -> Any:
        """What the head makes of the features for :meth:`tag_loss`: ``head_outputs`` by default."""
        return self.head_outputs(features)  # type: ignore[attr-defined]

    def tag_loss(self, outputs: Any, tags: Tensor, features: Tensor) -> MethodOutput:
        """The step's loss on a batch of tag sets: ``outputs`` are the method's :meth:`tag_outputs` of
        the features (its per-tag logits ``(..., N, K)`` by default), ``tags`` the bool ``(..., N, K)``
        targets, ``features`` the batch as given. The loss sums over the tags and averages over the
        rows (:func:`labelemb.methods.multi_hot.tag_mean`; one per seed, stacked); the logits
        returned are each tag's raw logit (a tag's probability is its sigmoid); the terms are
        detached by the caller. Every row counts: a non-finite value makes the loss so."""
        raise NotImplementedError


class PredictsNoisyLabels(Ability):
    """It models the training labels' noise, so that it can predict the *noisy* label apart from the
    clean class (forward correction: ``T^T p``). Its logits stay the clean-class prediction that
    every test figure judges; where the dev split's labels are noisy too (the default under
    ``noise:``), the dev error that selects the check is that of :meth:`noisy_label_logits`
    against them: a right clean prediction disagrees with a noisy dev label as often as the labels
    are wrong, so the plain dev error can stay flat while the clean error falls, and tells the
    checks apart no better than chance (Wei & Liu's sparse-high, where the wrong label is the
    majority of five classes)."""

    trait = "predicts_noisy_labels"
    predicts_noisy_labels: ClassVar[bool] = True

    def noisy_label_logits(self, logits: Tensor) -> Tensor:
        """Each row's log-probability of every noisy label ``(..., N, m)``, from the method's own
        logits of the clean class (what :meth:`logits` gives); its argmax is the predicted noisy label."""
        raise NotImplementedError
