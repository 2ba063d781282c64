"""The method contract: every way of turning features and labels into a loss.

A method owns the output layer(s) of a network: it maps backbone features ``h`` of shape
``(N, in_features)`` to a training loss and to prediction scores. Models never know which
method trains them, and methods never import a model or a dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..stacking import linear


@dataclass
class MethodOutput:
    """What one training step of a method returns.

    ``loss`` is a scalar ready for ``backward()``; ``logits`` are the ``(N, num_classes)``
    prediction scores of the batch, or None when the head worked through the rows in chunks (a
    large label set, where N x num_classes logits never exist at once: ``method.logits(features)``
    gives them); ``terms`` holds each loss term, detached, for logging.
    """

    loss: Tensor
    logits: Tensor | None
    terms: dict[str, Tensor] = field(default_factory=dict)


class LabelRangeError(ValueError):
    """A target label lies outside ``[0, num_classes)`` and is not ``ignore_index``."""


class Method(nn.Module):
    """Base class of every method: ``forward(features, target)`` returns a :class:`MethodOutput`
    (the loss, the logits, the logged terms) and ``logits(features)`` the prediction scores.

    Subclasses implement :meth:`forward` and :meth:`logits`; methods with epoch-level state
    override :meth:`on_epoch_end`; methods that learn a label representation override
    :meth:`label_representation`.

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
    included). Forward passes go through :meth:`check_inputs` and end with :meth:`Rows.output`,
    which is all it takes.
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

    def __init__(self, in_features: int, num_classes: int, ignore_index: int = -100) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs in_features >= 1 and num_classes >= 2, "
                f"got in_features={in_features}, num_classes={num_classes}"
            )
        self.in_features = in_features
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        raise NotImplementedError

    def logits(self, features: Tensor) -> Tensor:
        raise NotImplementedError

    def on_epoch_end(self) -> None:
        """Swap epoch-level state; the default method has none."""

    def label_representation(self) -> Tensor | None:
        """An ``(num_classes, d)`` matrix describing each label, or None if the method has none."""
        return None

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
        non-finite reaches the method's state or the gradients of its parameters; the method ends
        its step with :meth:`Rows.output`, which makes the loss say so.

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
        if target.dtype not in _INTEGER_DTYPES:
            raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
        target = target.long()
        outputs = None if head is None else head(features)
        checked = (features, *_tensors(outputs))
        rows = target.shape[-1]
        # One reduction per tensor and one host read tell the common case apart (an empty batch
        # has no labels to range over: it takes the general way, where it counts no row).
        if rows and _clean_batch(target, self.num_classes, checked):
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
            poison=_poison(features, valid & ~finite),
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


class LinearOutputMethod(Method):
    """A method whose one layer, ``output``, maps the features to the class scores it predicts.

    The base of the baseline and of the methods that only change the target: ``z = W h + b``,
    initialised as the released code does (see :func:`init_linear`).
    """

    def __init__(
        self, in_features: int, num_classes: int, ignore_index: int = -100, init_std: float | None = None
    ) -> None:
        super().__init__(in_features, num_classes, ignore_index)
        self.output = nn.Linear(in_features, num_classes)
        init_linear(self.output, init_std)

    def scores(self, features: Tensor) -> Tensor:
        """``W h + b``, for one seed or each seed of a stack."""
        return linear(features, self.output.weight, self.output.bias)

    def logits(self, features: Tensor) -> Tensor:
        return self.scores(features)


def gold(log_p: Tensor, label: Tensor) -> Tensor:
    """``log_p[..., i, label[..., i]]``: each row's value at its label."""
    return log_p.gather(-1, label.unsqueeze(-1)).squeeze(-1)


def finite_rows(*tensors: Tensor) -> Tensor:
    """Which rows are finite: ``(..., N)`` bool, True where every entry of the row is finite in every tensor.

    Each tensor is ``(..., N, k)`` (features, logits; a leading seed dimension allowed), so with
    stacked seeds a row is finite or not per seed.
    """
    finite = torch.isfinite(tensors[0]).all(-1)
    for tensor in tensors[1:]:
        finite = finite & torch.isfinite(tensor).all(-1)
    return finite


def _tensors(outputs: Any) -> tuple[Tensor, ...]:
    if outputs is None:
        return ()
    return outputs if isinstance(outputs, tuple) else (outputs,)


@torch.compiler.disable
def _clean_batch(target: Tensor, num_classes: int, tensors: tuple[Tensor, ...]) -> bool:
    """Whether every label lies in ``[0, num_classes)`` and every tensor is finite, read on the host.

    A sum is finite only if every summand is, so one reduction per tensor tells (half-precision
    tensors are summed in float32 lest finite values overflow; a sum that overflows from finite
    values merely sends the batch the general way, which finds every row finite). The labels'
    range and the sums come back in one host read, as floats: exact for labels below 2^24, and
    read in float64 for larger label sets. Kept out of ``torch.compile`` graphs: the host read
    splits the graph there anyway, and disabling it says so instead of warning about a
    data-dependent graph break. A bool is what the compiled rest depends on, so it is compiled
    at most twice.
    """
    with torch.no_grad():
        low, high = torch.aminmax(target)
        if num_classes > 2**24:
            low, high = low.double(), high.double()
        sums = [t.sum(dtype=torch.float32) if t.dtype in _HALF else t.sum() for t in tensors]
        low, high, *sums = torch.stack([low, high, *sums]).tolist()
    return low >= 0 and high < num_classes and all(map(math.isfinite, sums))


def _poison(features: Tensor, bad: Tensor) -> Tensor:
    """NaN (per seed) where any ``bad`` row, else 0; its gradient is NaN on the bad rows' features only.

    Added to a loss computed without the bad rows, it keeps the loss from looking healthy and
    sends the backbone a non-finite gradient from exactly those rows (what they would have sent),
    while the method's own parameters and buffers never see them.
    """
    bad = bad.unsqueeze(-1)
    marked = torch.where(bad, features, 1.0) * torch.where(bad, float("nan"), 0.0).to(features.dtype)
    return marked.sum((-2, -1))


def is_distributed() -> bool:
    """Whether this process is one of several (torchrun) whose statistics must be combined."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    return torch.distributed.get_world_size() if is_distributed() else 1


def per_process_share(local: Tensor) -> Tensor:
    """The all-process sum of ``local`` divided by the number of processes (``local`` alone if one).

    Data parallel training averages gradients over processes, so a per-process loss normalised
    by this share gives exactly the gradient of the global batch normalised by the global count,
    however the batch is split.
    """
    if not is_distributed():
        return local
    total = local.detach().clone()
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total / world_size()


_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8)
_HALF = (torch.float16, torch.bfloat16)


@dataclass
class Rows:
    """Which rows of a batch count towards a loss.

    ``label`` is the target with ignored rows set to class 0 (safe to index with); ``weight`` is
    1 for rows that count and 0 for the others (ignored, or not finite), or None when every row
    counts (the common case, which then needs no masking work); ``count`` is how many rows count
    (at least 1e-8). Rows run along the last dimension: with stacked seeds, ``(S, N)`` labels give
    ``(S,)`` sums and means. ``finite`` is None when every row's features and logits are finite,
    else the ``(..., N)`` bool mask of those that are; ``poison`` is then what :meth:`output` adds
    to the loss (see :func:`_poison`).
    """

    label: Tensor
    weight: Tensor | None
    count: Tensor | float
    finite: Tensor | None = None
    poison: Tensor | None = None

    def safe(self, values: Tensor) -> Tensor:
        """``values`` (``(..., N, k)``) with the rows that are not finite set to 0; as is when all are."""
        if self.finite is None:
            return values
        return torch.where(self.finite.unsqueeze(-1), values, 0.0)

    def output(self, loss: Tensor, logits: Tensor | None, terms: dict[str, Tensor]) -> MethodOutput:
        """The step's :class:`MethodOutput`.

        When a row that would count (its target is not ``ignore_index``) was not finite, the loss
        is NaN (per seed) and that row's features get a NaN gradient (see :func:`_poison`); the
        logits of every row that was not finite are NaN.
        """
        if self.finite is not None:
            loss = loss + self.poison.to(loss.dtype)
            if logits is not None:
                logits = logits.masked_fill(~self.finite.unsqueeze(-1), float("nan"))
        return MethodOutput(loss=loss, logits=logits, terms=terms)

    def sum(self, values: Tensor) -> Tensor:
        """Sum of per-row ``values`` over the rows that count."""
        return values.sum(-1) if self.weight is None else (values * self.weight).sum(-1)

    def mean(self, values: Tensor) -> Tensor:
        """Mean of per-row ``values`` over the rows that count (0 when none does)."""
        return self.sum(values) / self.count

    def scale(self) -> Tensor | float:
        """Per-row factor that turns a sum over rows into :meth:`mean`: ``weight / count``."""
        if self.weight is None:
            return 1.0 / self.count
        count = self.count.unsqueeze(-1) if isinstance(self.count, Tensor) else self.count
        return (self.weight / count).unsqueeze(-1)


def init_linear(layer: nn.Linear, std: float | None) -> None:
    """Initialise an output layer as the released code does: truncated normal, zero bias.

    ``std=None`` keeps PyTorch's default initialisation.
    """
    if std is None:
        return
    nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(layer.bias)


def read_tensor_file(path: Path, key: str) -> Tensor:
    """The float tensor ``key`` (or the only tensor) of a ``.safetensors`` file, or a ``.pt`` tensor."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if key in tensors:
            return tensors[key].float()
        if len(tensors) == 1:
            return next(iter(tensors.values())).float()
        raise ValueError(
            f"{path} holds tensors {sorted(tensors)} but none named {key!r}: keep one, or name it {key!r}"
        )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Tensor):
        raise ValueError(f"{path} does not hold a single tensor (found {type(loaded).__name__})")
    return loaded.float()
