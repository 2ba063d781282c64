"""The method contract: every way of turning features and labels into a loss.

A method owns the output layer(s) of a network: it maps backbone features ``h`` of shape
``(N, in_features)`` to a training loss and to prediction scores. Models never know which
method trains them, and methods never import a model or a dataset.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..search_spaces import Space
from ..stacking import linear
from .abilities import EpochState, MultiHot
from .accumulation import GradientAccumulation, MicroBatch
from .batch_shapes import BatchShape
from .chunked import check_chunk_size, chunked_linear_loss, rows_per_chunk
from .finite import trust_batches
from .inputs import LabelRangeError, check_batch
from .multi_hot import is_tag_target, tag_step
from .rows import MethodOutput, Rows, gold
from .shared_options import list_shared_options

__all__ = [
    "ROW_KINDS",
    "LabelRangeError",
    "LinearOutputMethod",
    "Method",
    "MethodOutput",
    "MicroBatch",
    "Rows",
    "gold",
    "init_linear",
    "trust_batches",
]

#: The kinds of rows a method can turn into a loss: "class", one example of a classification task
#: a row, "token", one target token of a sequence model a row (a vocabulary wide), and "tags", one
#: example of a multi-label task a row, its target a multi-hot tag set (:mod:`labelemb.methods.multi_hot`).
ROW_KINDS = ("class", "token", "tags")
#: What a method serves unless it says otherwise: single-label rows. Tag sets it serves only by the
#: :class:`~labelemb.methods.abilities.MultiHot` mixin.
SINGLE_LABEL_ROWS = frozenset({"class", "token"})


def _rows_served(cls: type) -> frozenset[str]:
    """The kinds of rows ``cls`` serves: those it declares, with "tags" where, and only where, it
    has the MultiHot ability (declaring "tags" without the mixin is refused: it would grant nothing)."""
    declared = cls.__dict__.get("serves", frozenset())
    if "tags" in declared and not issubclass(cls, MultiHot):
        raise TypeError(
            f"{cls.__name__} lists 'tags' in serves but is no MultiHot: list "
            "labelemb.methods.abilities.MultiHot among its bases (and write tag_loss), or drop 'tags'"
        )
    single_label = cls.serves - {"tags"}
    return single_label | {"tags"} if issubclass(cls, MultiHot) else single_label


class Method(GradientAccumulation, nn.Module):
    """Base class of every method: ``forward(features, target)`` returns a :class:`MethodOutput`
    (the loss, the logits, the logged terms) and ``logits(features)`` the prediction scores.

    ``forward`` is written once, here. It checks the batch (:meth:`check_inputs`), runs the
    method's head on the features, hands the head's outputs and the rows that count to the
    method's loss, and builds the step's output with :meth:`Rows.output`. A subclass writes
    :meth:`compute_loss` (the loss over the rows that count, the batch's logits and the terms to
    log, which the base detaches) and :meth:`logits` (the prediction scores); where need be
    :meth:`head_outputs` (the loss computed from other outputs than the logits),
    and :meth:`label_representation`. A method that only changes the target of a linear layer
    writes less: :class:`~labelemb.methods.targets.TargetMethod`. What a method can do beyond this
    it opts in to with a mixin of :mod:`labelemb.methods.abilities` (stacked seeds, a chunked head,
    the dev split's predictions, state swapped at each epoch's end, tag sets: a bool target takes
    the multi-hot path of :mod:`labelemb.methods.multi_hot` to the method's ``tag_loss``) or
    :class:`~labelemb.methods.per_example.PerExampleState`.

    Options: a subclass's constructor takes its own options as keyword-only arguments and hands
    the shared ones on to this constructor as ``**options``: ``init_std`` (the output layers'
    initialisation, see :meth:`linear_head`), ``ignore_index`` (the target of rows that do not
    count) and, for a chunked head, ``chunk_size`` (rows per chunk; None chooses). Its signature
    then lists them after its own (:mod:`labelemb.methods.shared_options`).

    Rows that count: a row counts when its target is not ``ignore_index`` and its features and
    its logits (the head's outputs) are all finite. The others add nothing to any state the method
    keeps and no gradient to its parameters; when such a row has a target that counts, the loss is
    NaN (per seed, when stacked) and the row's features get a NaN gradient, so that the loop, or an
    AMP ``GradScaler``, sees the bad step (:mod:`labelemb.methods.inputs`). A batch with no rows
    gives a zero loss connected to the graph and changes no state. ``forward`` sees to all of
    this; a loss need only compute over ``rows``.
    """

    #: The registry name, set by :func:`labelemb.methods.register`.
    name: str = ""
    #: Whether ``forward`` needs each example's dataset position (``index=``).
    needs_index: bool = False
    #: The abilities' attributes (:mod:`labelemb.methods.abilities`), False unless a mixin says so.
    stackable: bool = False
    chunkable: bool = False
    reads_dev: ClassVar[bool] = False
    epoch_state: ClassVar[bool] = False
    multi_hot: ClassVar[bool] = False
    #: The kinds of rows (:data:`ROW_KINDS`) the method can be the output layer for: a class declares
    #: its single-label ones, and "tags" is added where it is a MultiHot (the one way in).
    serves: ClassVar[frozenset[str]] = SINGLE_LABEL_ROWS
    #: Why the method cannot serve a kind of rows, for each kind that ``serves`` leaves out.
    cannot_serve: ClassVar[dict[str, str]] = {}
    #: The options worth tuning and the range each is searched over (:class:`labelemb.search_spaces.Space`);
    #: every bound must be a value the constructor accepts (a preset's fixed options are not searched).
    search_space: ClassVar[dict[str, Space]] = {}
    #: Further options searched only when an option has a given value, ``{(option, value): {...}}``:
    #: one that does nothing otherwise (label_embedding's ``soft_warmup``, for ``variant="nlp"`` only).
    search_space_when: ClassVar[dict[tuple[str, object], dict[str, Space]]] = {}
    #: Why gradient accumulation does not give the step of one batch of all the micro-batches (a
    #: loss with batch-wide terms, see :mod:`labelemb.methods.accumulation`); empty where it does.
    accumulation_caveat: ClassVar[str] = ""
    #: How the method needs its training batches built (:mod:`labelemb.methods.batch_shapes`): for a
    #: loss over rows that belong together (cskd's same-class pairs); None: any batch.
    batch_shape: ClassVar[BatchShape | None] = None
    #: Whether :meth:`check_inputs` looks at each batch's labels and values (one host read a batch).
    #: A trainer whose labels were checked when read, and whose rows all count, turns it off
    #: (:func:`trust_batches`): every row then counts, and a non-finite value makes the loss so.
    check_batches: bool = True
    #: Set by an adapter (Lightning's ``LabelembCallback``) while a trainer accumulates gradients:
    #: ``forward`` in training then returns :meth:`accumulated_loss`. None: the batch is the step.
    micro_batch: MicroBatch | None = None

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        init_std: float | None = None,
        chunk_size: int | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs in_features >= 1 and num_classes >= 2, "
                f"got in_features={in_features}, num_classes={num_classes}"
            )
        if chunk_size is not None and not self.chunkable:
            raise TypeError(f"{type(self).__name__} has no chunked head: it takes no chunk_size")
        check_chunk_size(chunk_size)
        self.in_features = in_features
        self.num_classes = num_classes
        self.init_std = init_std
        self.chunk_size = chunk_size
        self.ignore_index = ignore_index

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (
            "on_epoch_end" in cls.__dict__
            and "epoch_state" not in cls.__dict__
            and not issubclass(cls, EpochState)
        ):
            # The trainer calls the hook of an EpochState only: without the mixin, it never would.
            raise TypeError(
                f"{cls.__name__} writes on_epoch_end but is no EpochState: list "
                "labelemb.methods.abilities.EpochState among its bases, or the trainer never calls it"
            )
        cls.serves = _rows_served(cls)
        init = cls.__dict__.get("__init__")
        if init is not None:
            list_shared_options(init, Method.__init__, chunked=cls.chunkable)
        elif cls.chunkable and "chunk_size" not in inspect.signature(cls).parameters:
            raise TypeError(
                f"{cls.__name__} is chunkable but inherits a constructor without chunk_size: give it a "
                "constructor of its own that hands **options on, so that its signature lists chunk_size"
            )

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        """One training step on ``(N, in_features)`` features and their ``(N,)`` targets.

        ``index`` is each example's position in the training set, for a method that
        :attr:`needs_index`. Taken in chunks of rows where :meth:`chunking` says so. While an
        adapter says the batch is a micro-batch (:attr:`micro_batch`), a training step returns
        :meth:`accumulated_loss`. A ``torch.bool`` target ``(N, K)`` is a tag set per row, for a
        method that trains on them (:class:`~labelemb.methods.abilities.MultiHot`; see
        :mod:`labelemb.methods.multi_hot`).
        """
        micro_batch = self.micro_batch
        if micro_batch is not None and self.training and torch.is_grad_enabled():
            return self.accumulated_loss(features, target, micro_batch, index=index)
        return self.batch_loss(features, target, index=index)

    def batch_loss(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        """The step of ``forward`` with the batch as the whole step: the method's own mean over it."""
        if is_tag_target(target):
            return tag_step(self, features, target)
        chunk_rows = self.chunking(features)
        if chunk_rows is None:
            rows, outputs = self.check_inputs(features, target, self.head_outputs)
            step = self.compute_loss(outputs, rows, features, index)
        else:
            rows, _ = self.check_inputs(features, target)
            step = self.chunked_loss(features, rows, chunk_rows)
        terms = {name: value.detach() for name, value in step.terms.items()}
        return rows.output(step.loss, step.logits, terms)

    def head_outputs(self, features: Tensor) -> Tensor | tuple[Tensor, ...]:
        """What the method's head makes of the features, for :meth:`compute_loss`: a tensor
        ``(..., N, k)`` or a tuple of them, each checked for non-finite rows. The logits by default."""
        return self.logits(features)

    def compute_loss(self, outputs: Any, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        """The step's loss over the rows that count, the batch's logits and the terms to log.

        ``outputs`` are :meth:`head_outputs` (computed on :meth:`Rows.safe` features where a row
        is not finite), ``rows`` the batch's :class:`Rows`, ``features`` the batch as given and
        ``index`` as passed to ``forward``. The base adds what the rows that do not count need.
        """
        raise NotImplementedError

    def chunking(self, features: Tensor) -> int | None:
        """Rows per chunk, where the chunked head takes this batch; None (the default) computes it at once."""
        return None

    def chunked_loss(self, features: Tensor, rows: Rows, chunk_rows: int) -> MethodOutput:
        """The step as :meth:`compute_loss` gives it, computed ``chunk_rows`` rows at a time
        (its logits None: they never exist for all rows at once)."""
        raise NotImplementedError

    def logits(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Swap epoch-level state (:class:`~labelemb.methods.abilities.EpochState`); the default
        method has none."""

    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        """The dev split's logits and labels at an epoch's end, for a method that reads them
        (:class:`~labelemb.methods.abilities.ReadsDev`); the default method does not."""

    def label_representation(self) -> Tensor | None:
        """An ``(num_classes, d)`` matrix describing each label, or None if the method has none."""
        return None

    def linear_head(self, width: int) -> nn.Linear:
        """An output layer ``Linear(in_features, width)``, initialised as ``init_std`` says
        (:func:`init_linear`)."""
        layer = nn.Linear(self.in_features, width)
        init_linear(layer, self.init_std)
        return layer

    def check_inputs(
        self, features: Tensor, target: Tensor, head: Callable[[Tensor], Any] | None = None
    ) -> tuple[Rows, Any]:
        """Validate a batch, run ``head`` on its features, and say which rows count.

        Returns ``(rows, head(features))`` (``None`` for no ``head``); ``head`` maps features to
        the method's logits: a tensor ``(..., N, k)`` or a tuple of them. In the common case
        (every label in range, every value finite) ``rows.weight`` is None; otherwise the head runs
        again on :meth:`Rows.safe` features. A readable error for a label out of range, or a
        batch of the wrong shape (:mod:`labelemb.methods.inputs`).
        """
        return check_batch(self, features, target, head)

    def artifacts(self) -> dict[str, Tensor]:
        """Tensors a finished run saves beside its weights, by name.

        ``representation`` (the :meth:`label_representation`) by default; a method adds what
        else a later run or analysis should read (label_embedding: its raw ``E``).
        """
        representation = self.label_representation()
        return {} if representation is None else {"representation": representation}


class LinearOutputMethod(Method):
    """A method whose one layer, ``output``, maps the features to the class scores it predicts.

    The base of the baseline and of the methods that only change the target: ``z = W h + b``,
    initialised as the released code does (see :func:`init_linear`). A chunkable one writes its
    loss per row too (:meth:`row_loss`, :meth:`row_terms`): a batch of more rows than
    ``chunk_size`` (None: about 2^23 logits) then takes the chunked head of
    :mod:`labelemb.methods.chunked`, whose gradients come in closed form from :meth:`row_loss`.
    """

    def __init__(self, in_features: int, num_classes: int, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        self.output = self.linear_head(num_classes)

    def logits(self, features: Tensor) -> Tensor:
        """``W h + b``, for one seed or each seed of a stack."""
        return linear(features, self.output.weight, self.output.bias)

    def chunking(self, features: Tensor) -> int | None:
        if not self.chunkable or features.dim() != 2:  # stacked seeds are computed at once
            return None
        return rows_per_chunk(self.chunk_size, features.shape[0], self.num_classes)

    def chunked_loss(self, features: Tensor, rows: Rows, chunk_rows: int) -> MethodOutput:
        h, label = rows.counted(features)
        weight, bias = self.output.weight, self.output.bias
        loss, terms = chunked_linear_loss(
            h, weight, bias, label, rows.count, chunk_rows, self.row_loss, self.row_terms()
        )
        return MethodOutput(loss, None, terms)

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """A chunk's per-row terms ``(n, T)``, in the order of :meth:`row_terms`, and the gradient
        of each row's loss (the terms weighted) with respect to its logits ``(n, m)``."""
        raise NotImplementedError

    def row_terms(self) -> dict[str, float]:
        """The names of the terms :meth:`row_loss` gives, in order, and their weights in the loss."""
        raise NotImplementedError


def init_linear(layer: nn.Linear, std: float | None) -> None:
    """Initialise an output layer as the released code does: truncated normal, zero bias.

    ``std=None`` keeps PyTorch's default initialisation.
    """
    if std is None:
        return
    nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(layer.bias)
