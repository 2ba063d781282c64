"""The method contract: every way of turning features and labels into a loss.

A method owns the output layer(s) of a network: it maps backbone features ``h`` of shape
``(N, in_features)`` to a training loss and to prediction scores. Models never know which
method trains them, and methods never import a model or a dataset.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..search import Space
from ..stacking import linear
from .accumulation import GradientAccumulation, MicroBatch
from .batch_shapes import BatchShape
from .chunked import check_chunk_size, chunked_linear_loss, rows_per_chunk
from .finite import INTEGER_DTYPES, clean_batch, finite_rows, poison, tensors_of, trust_batches
from .processes import is_distributed, per_process_share
from .rows import MethodOutput, Rows, gold

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
#: a row, and "token", one target token of a sequence model a row (a vocabulary wide).
ROW_KINDS = ("class", "token")


class LabelRangeError(ValueError):
    """A target label lies outside ``[0, num_classes)`` and is not ``ignore_index``."""


class Method(GradientAccumulation, nn.Module):
    """Base class of every method: ``forward(features, target)`` returns a :class:`MethodOutput`
    (the loss, the logits, the logged terms) and ``logits(features)`` the prediction scores.

    ``forward`` is written once, here. It checks the batch (:meth:`check_inputs`), runs the
    method's head on the features, hands the head's outputs and the rows that count to the
    method's loss, and builds the step's output with :meth:`Rows.output`. A subclass writes:

    - :meth:`compute_loss`: the loss over the rows that count, the batch's logits and the loss
      terms to log (the base detaches them);
    - :meth:`logits`: the prediction scores;
    - :meth:`head_outputs`, where the loss is computed from other outputs than the logits (the
      default is the logits);
    - for large label sets, ``chunkable = True`` with :meth:`chunking` and :meth:`chunked_loss`:
      a step taken chunk by chunk of rows, used when :meth:`chunking` says the batch needs it;
    - :meth:`on_epoch_end` for epoch-level state (with ``reads_dev = True``, fed by the dev split's
      predictions: :meth:`on_dev_predictions`), :meth:`label_representation` for a learned
      label representation.

    Options: a subclass's constructor takes its own options as keyword-only arguments and hands
    the shared ones on to this constructor as ``**options``: ``init_std`` (the output layers'
    initialisation, see :meth:`linear_head`), ``ignore_index`` (the target of rows that do not
    count) and, for a chunkable method, ``chunk_size`` (rows per chunk; None chooses). Its
    signature then lists them after its own, as :func:`labelemb.methods.options` and a config
    read them. ``serves`` says which kinds of rows (:data:`ROW_KINDS`) the method can be the
    output layer for, and ``cannot_serve`` why not, for each kind it leaves out.

    Rows that count: a row counts when its target is not ``ignore_index`` and its features and
    its logits (the method's head outputs) are all finite. Rows with non-finite features or
    logits (NaN, +-inf) are left out like ignored rows: they add nothing to any state the method
    keeps (its buffers: OLS's sums and counts, LWR's recorded soft labels, LwAL's label vectors)
    and no gradient to the method's parameters (label_embedding's ``E``, full or compressed,
    among them), so one bad batch cannot make that state non-finite. The loss is not hidden: when
    such a row has a target that counts, the returned loss is NaN (per seed, when stacked) and
    the row's features get a NaN gradient, so the training loop, or an AMP ``GradScaler``, sees
    the bad step and can skip it; those rows' returned logits are NaN, and the logged terms are
    over the rows that count. A batch with no rows (``N = 0``) gives a zero loss connected to the
    graph, zero gradients and ``(0, num_classes)`` logits, and changes no state (step counters
    included). ``forward`` sees to all of this; a loss need only compute over ``rows``.
    """

    #: The registry name, set by :func:`labelemb.methods.register`.
    name: str = ""
    #: Whether ``forward`` needs each example's dataset position (``index=``).
    needs_index: bool = False
    #: Whether the method's code also runs on tensors stacked over seeds (``(S, N, d)`` features,
    #: every parameter and buffer with a leading seed dimension), so that the batched trainer can
    #: train many seeds at once. A method says so once it is written with the helpers of
    #: :mod:`labelemb.stacking` and its stacked results are tested against per-seed runs.
    stackable: bool = False
    #: Whether the method has a chunked head for large label sets (:meth:`chunking`,
    #: :meth:`chunked_loss`); such a method takes the option ``chunk_size``.
    chunkable: bool = False
    #: The kinds of rows (:data:`ROW_KINDS`) the method can be the output layer for.
    serves: ClassVar[frozenset[str]] = frozenset(ROW_KINDS)
    #: Why the method cannot serve a kind of rows, for each kind that ``serves`` leaves out.
    cannot_serve: ClassVar[dict[str, str]] = {}
    #: The options worth tuning and the range each is searched over (:class:`labelemb.search.Space`),
    #: declared beside the method's code; every bound must be a value the constructor accepts. A
    #: preset's fixed options are left out of its search (:func:`labelemb.methods.registry.search_space`).
    search_space: ClassVar[dict[str, Space]] = {}
    #: Further options searched only when an option has a given value, ``{(option, value): {...}}``:
    #: one that does nothing otherwise (label_embedding's ``soft_warmup``, for ``variant="nlp"`` only).
    search_space_when: ClassVar[dict[tuple[str, object], dict[str, Space]]] = {}
    #: Why gradient accumulation does not give a method the step of one batch of all its micro-batches
    #: (a loss with terms of the batch as a whole that :meth:`micro_batch_loss` cannot make exact);
    #: empty where it does. The adapters warn with it when a trainer accumulates.
    accumulation_caveat: ClassVar[str] = ""
    #: How the method needs its training batches built (:mod:`labelemb.methods.batch_shapes`), for
    #: a loss over rows that belong together (cskd's same-class pairs); None: any batch. The training
    #: loop honours it; a trainer that builds its own batches (the adapters) refuses the method.
    batch_shape: ClassVar[BatchShape | None] = None
    #: Whether the method reads the dev split's predictions at each epoch's end
    #: (:meth:`on_dev_predictions`): a trainer without a dev split refuses it.
    reads_dev: ClassVar[bool] = False
    #: Whether :meth:`check_inputs` looks at each batch's labels and values (one host read a batch:
    #: a GPU waits for it). A trainer whose labels were checked when its data was read, and whose
    #: rows all count, turns it off (labelemb's own layouts do, :func:`trust_batches`): every row
    #: then counts, as in a plain loop, and a non-finite value makes the loss non-finite.
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
        init = cls.__dict__.get("__init__")
        if init is not None:
            _list_shared_options(cls, init)
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
        :meth:`accumulated_loss`.
        """
        micro_batch = self.micro_batch
        if micro_batch is not None and self.training and torch.is_grad_enabled():
            return self.accumulated_loss(features, target, micro_batch, index=index)
        return self.batch_loss(features, target, index=index)

    def batch_loss(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        """The step of ``forward`` with the batch as the whole step: the method's own mean over it."""
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
        """Swap epoch-level state; the default method has none."""

    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        """The dev split's logits ``(N, m)`` and labels ``(N,)`` (stacked: ``(S, N, m)``, ``(S, N)``,
        each seed's own), from the weights at an epoch's end in evaluation mode, before
        :meth:`on_epoch_end`; called, without gradient, for a method that :attr:`reads_dev` only."""

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

        Returns ``(rows, head(features))`` (``None`` for no ``head``). ``head`` maps features to
        the method's logits: a tensor ``(..., N, k)`` or a tuple of them. A row counts when its
        target is not ``ignore_index`` and its features and head outputs are all finite (see
        :class:`Method`). In the common case (every label in range, every value finite: one
        reduction per tensor and one host read tell) the outputs are returned as computed and
        ``rows.weight`` is None. Otherwise the head runs again on :meth:`Rows.safe` features (the
        rows that are not finite, in the features or in the outputs, set to zero), so that nothing
        non-finite reaches the method's state or the gradients of its parameters; ``forward`` ends
        the step with :meth:`Rows.output`, which makes the loss say so.

        Out-of-range labels would otherwise surface as a device-side assert on CUDA or an
        opaque IndexError from deep inside torch, so they are caught here with a readable error.
        A method whose tensors are stacked over seeds (``stacked_seeds``, see
        :func:`labelemb.stacking.stack_modules`) takes ``(S, N, d)`` features and ``(S, N)`` targets.
        """
        seeds = getattr(self, "stacked_seeds", None)
        shape = "(N, {d})" if seeds is None else f"({seeds}, N, {{d}})"
        if features.dim() != (2 if seeds is None else 3) or features.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects features of shape {shape.format(d=self.in_features)}, "
                f"got {tuple(features.shape)}; flatten sequences to (N, d) first"
            )
        if target.shape != features.shape[:-1]:
            raise ValueError(
                f"target must have shape {tuple(features.shape[:-1])} to match the features, "
                f"got {tuple(target.shape)}"
            )
        if target.dtype not in INTEGER_DTYPES:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        target = target.long()
        outputs = None if head is None else head(features)
        checked = (features, *tensors_of(outputs))
        rows = target.shape[-1]
        # One reduction per tensor and one host read tell the common case apart (an empty batch
        # has no labels to range over: it takes the general way, where it counts no row). An
        # ignore_index that is itself a class (0) cannot be told from a label by its range: such a
        # batch always takes the general way, which leaves its ignored rows out.
        ignore_is_a_class = 0 <= self.ignore_index < self.num_classes
        trusted = not self.check_batches
        if rows and (trusted or (not ignore_is_a_class and clean_batch(target, self.num_classes, checked))):
            if is_distributed():
                count = per_process_share(features.new_tensor(rows))
                return Rows(label=target, weight=None, count=count), outputs
            return Rows(label=target, weight=None, count=float(rows)), outputs
        valid = target != self.ignore_index
        out_of_range = valid & ((target < 0) | (target >= self.num_classes))
        if bool(out_of_range.any()):
            bad = target[out_of_range][:5].tolist()
            raise LabelRangeError(
                f"labels {bad} are outside [0, {self.num_classes}); each target must be a class "
                f"index below num_classes={self.num_classes} or ignore_index={self.ignore_index}. "
                "Check the dataset's labels or the num_classes you built the method with."
            )
        finite = finite_rows(*checked)
        counted = valid & finite
        weight = counted.to(features.dtype)
        count = per_process_share(weight.sum(-1))
        rows = Rows(
            label=target.masked_fill(~valid, 0),
            weight=weight,
            count=count.clamp(min=1e-8),
            finite=finite,
            poison=poison(features, valid & ~finite),
        )
        if head is not None:
            # Again, on features whose rows that are not finite (in the features or, from an
            # overflow, in the outputs) are zeros: no gradient then passes through a non-finite value.
            outputs = head(rows.safe(features))
        return rows, outputs

    def artifacts(self) -> dict[str, Tensor]:
        """Tensors a finished run saves beside its weights, by name.

        ``representation`` (the :meth:`label_representation`) by default; a method adds what
        else a later run or analysis should read (label_embedding: its raw ``E``).
        """
        representation = self.label_representation()
        return {} if representation is None else {"representation": representation}


def _list_shared_options(cls: type[Method], init: Callable[..., None]) -> None:
    """Give ``init``, a constructor that hands ``**options`` on to :class:`Method`'s, the signature
    and type hints of the shared options ``cls`` takes, after its own: the signature that
    :func:`labelemb.methods.options` reads and a config's values are checked against.

    ``chunk_size`` is one of them only for a chunkable method; one that ``init`` names itself is
    left to it. A constructor without ``**options`` names every option it takes, and is left as it is.
    """
    signature = inspect.signature(init)
    *own, last = signature.parameters.values()
    if last.kind is not inspect.Parameter.VAR_KEYWORD:
        return
    shared = [
        parameter
        for name, parameter in inspect.signature(Method.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        and name not in signature.parameters
        and (cls.chunkable or name != "chunk_size")
    ]
    init.__signature__ = signature.replace(parameters=[*own, *shared])
    hints = typing.get_type_hints(Method.__init__)
    init.__annotations__ = {**init.__annotations__, **{p.name: hints[p.name] for p in shared}}


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
