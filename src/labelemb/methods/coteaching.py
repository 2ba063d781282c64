"""Co-teaching (Han et al. 2018): two networks, each trained on the small-loss examples the other picks."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..search_spaces import Space
from ..stacking import linear
from .abilities import EpochState, Stackable
from .base import Method, MethodOutput, Rows, gold, init_linear
from .host_count import HostCount
from .registry import register


@register("coteaching")
class CoTeaching(Stackable, EpochState, Method):
    """Co-teaching, Han et al. (NeurIPS 2018), "Co-teaching: Robust Training of Deep Neural
    Networks with Extremely Noisy Labels", Section 2 (Algorithm 1).

    Two networks ``f`` and ``g`` train side by side on the same batches. In each batch of ``N``
    rows each network ranks the rows by its own cross-entropy and keeps its ``R(T) N`` smallest
    (those it takes for clean); each network then learns from the rows the *other* one kept::

        R(T)  = 1 - min(T / T_k * tau, tau)          (T: epochs done; T_k = gradual_epochs)
        D_f   = the floor(R(T) N) rows of smallest H(y, softmax(z_f)), D_g likewise for g
                (N: the rows that count; ignored rows are neither counted nor kept)
        L     = mean_{i in D_g} H(y_i, softmax(z_f,i)) + mean_{i in D_f} H(y_i, softmax(z_g,i))

    The two sums touch disjoint parameters, so one backward gives each network the gradient of
    its own loss (their code steps two Adam optimisers; Adam is per parameter, so one over both
    is the same). The ranking is not differentiated. ``tau`` is ``forget_rate``; when the config
    leaves it out the run tells the noise rate of the training labels (``noise_rate``), as their
    code defaults to it.

    Two networks: the class asks the harness for two copies of the backbone (:attr:`backbones`),
    each drawn on its own; the features arrive side by side, ``(N, 2 d)``, and head 1 reads
    columns ``[0, d)``, head 2 columns ``[d, 2 d)``, so that each head's gradient reaches only its
    own backbone. A pretrained backbone gives both copies the same starting weights; a frozen one
    (``model.freeze``) gives both the same features, and the two networks are then the two heads
    (with a dense layer each, ``model.dense``). Used by hand, ``in_features`` is the width of both
    networks' features together. Prediction is network 1's logits (the paper reports one network
    of the pair; their code evaluates both).

    Departures from their code (``bhanML/Co-teaching``, ``loss.py`` and ``main.py``): R(T) is the
    paper's (``tau`` reached at epoch ``T_k``; their ``linspace`` reaches it at ``T_k - 1``), the
    exponent ``c`` of their ``--exponent`` is 1; a run of ``epochs`` < ``T_k`` ramps over
    ``epochs - 1`` epochs so that its last one forgets ``tau`` (their schedule needs
    ``n_epoch >= num_gradual``); at least one row is kept (their ``int()`` can keep none); the
    optimiser and its schedule are the run's (theirs decays Adam's rate and beta1 from epoch 80).
    ``N`` counts only the rows that count (their ``int((1 - forget) N)`` is over batches with no
    ignored row): rows of weight 0 rank last, are never kept, and do not widen the others' kept
    share. Under torchrun each process ranks its own share of the batch. Seeds side by side (the
    batched trainer) stack the two backbones of each seed as they stack one
    (:class:`~labelemb.assembly.network.Replicas` has the hook).
    """

    #: How many copies of the backbone the harness builds for the method (side by side).
    backbones: ClassVar[int] = 2
    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its two networks are two copies of the backbone, and a sequence model's target "
        "tokens are rows of one decoder pass",
        "tags": (
            "each network keeps the rows of smallest cross-entropy to their one (possibly wrong) "
            "label for the other; ranking rows by a tag set's loss is a different method, not built "
            "here"
        ),
    }
    # forget_rate, tau (constructor: [0, 1)): 0 is two networks trained on every row; the paper's
    # noise rates are 0.2 to 0.5 (their code's tau), and past 0.6 most of every batch is left out.
    # gradual_epochs, T_k (>= 0): their 10 inside; 0 forgets tau from the start.
    search_space: ClassVar[dict[str, Space]] = {
        "forget_rate": Space.floats(0.0, 0.6),
        "gradual_epochs": Space.ints(0, 20),
    }
    accumulation_caveat = "each micro-batch keeps its own small-loss share of its rows"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        forget_rate: float | None = None,
        noise_rate: float | None = None,
        gradual_epochs: int = 10,
        epochs: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if in_features % 2:
            raise ValueError(
                "coteaching reads two networks' features side by side: in_features must be even, "
                f"got {in_features}"
            )
        self.forget_rate = _forget_rate(forget_rate, noise_rate)
        if isinstance(gradual_epochs, bool) or int(gradual_epochs) != gradual_epochs or gradual_epochs < 0:
            raise ValueError(
                f"gradual_epochs (T_k, the epochs of the ramp) must be an integer >= 0, got {gradual_epochs}"
            )
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
            raise ValueError(f"epochs (the run's) must be an integer >= 1, got {epochs}")
        # A short run ramps over its own length, so that its last epoch forgets the full rate.
        self.ramp_epochs = (
            int(gradual_epochs) if epochs is None else min(int(gradual_epochs), int(epochs) - 1)
        )
        half = in_features // 2
        self.head_1 = nn.Linear(half, num_classes)
        self.head_2 = nn.Linear(half, num_classes)
        for head in (self.head_1, self.head_2):
            init_linear(head, self.init_std)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self._epoch = HostCount()

    def forget_share(self, epochs_done: int) -> float:
        """``1 - R(T)``: the share of a batch each network leaves out after ``epochs_done`` epochs."""
        if self.ramp_epochs == 0:
            return self.forget_rate
        return self.forget_rate * min(epochs_done / self.ramp_epochs, 1.0)

    def kept_rows(self, rows: int, epochs_done: int) -> int:
        """How many of a batch's ``rows`` each network keeps: ``floor(R(T) rows)``, at least one."""
        # The small slack keeps 0.8 * 100 from rounding down to 79.
        return min(rows, max(1, math.floor((1.0 - self.forget_share(epochs_done)) * rows + 1e-9)))

    def kept_count(self, label: Tensor, weight: Tensor | None, epochs_done: int) -> Tensor:
        """:meth:`kept_rows` of the rows that count, on the device: ``(...,)`` int64, one per seed.

        Only rows of weight > 0 make ``N``; counted on the device, without a host read, so that
        the step stays free of syncs.
        """
        # float64 makes the product the host's (kept_rows); MPS has no float64, float32 is near.
        dtype = torch.float32 if label.device.type == "mps" else torch.float64
        if weight is None:
            rows = torch.full(label.shape[:-1], label.shape[-1], dtype=dtype, device=label.device)
        else:
            rows = (weight > 0).sum(-1, dtype=dtype)
        share = 1.0 - self.forget_share(epochs_done)
        return torch.floor(share * rows + 1e-9).clamp(min=1).to(torch.int64)

    def head_outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        half = self.in_features // 2
        first = linear(features[..., :half], self.head_1.weight, self.head_1.bias)
        second = linear(features[..., half:], self.head_2.weight, self.head_2.bias)
        return first, second

    def logits(self, features: Tensor) -> Tensor:
        """Network 1's class scores (the features' first half through head 1)."""
        half = self.in_features // 2
        return linear(features[..., :half], self.head_1.weight, self.head_1.bias)

    def compute_loss(
        self, outputs: tuple[Tensor, Tensor], rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        first, second = outputs
        ce_1 = -gold(F.log_softmax(first, dim=-1), rows.label)
        ce_2 = -gold(F.log_softmax(second, dim=-1), rows.label)
        epochs_done = self._epoch.read(self.epoch)
        keep: Tensor | int = (
            self.kept_rows(rows.label.shape[-1], epochs_done)
            if rows.weight is None
            else self.kept_count(rows.label, rows.weight, epochs_done)
        )
        picked_by_1 = small_loss_rows(ce_1, keep, rows.weight)
        picked_by_2 = small_loss_rows(ce_2, keep, rows.weight)
        # The exchange: each network learns from the rows its peer kept.
        loss_1 = (ce_1 * picked_by_2).sum(-1) / picked_by_2.sum(-1).clamp(min=1.0)
        loss_2 = (ce_2 * picked_by_1).sum(-1) / picked_by_1.sum(-1).clamp(min=1.0)
        terms = {"ce": rows.mean(ce_1), "network_1": loss_1, "network_2": loss_2}
        return MethodOutput(loss_1 + loss_2, first, terms)

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch: the next one forgets a step more of each batch."""
        self._epoch.add_one(self.epoch)


def small_loss_rows(losses: Tensor, keep: Tensor | int, weight: Tensor | None) -> Tensor:
    """A ``(..., N)`` 0/1 mask of the ``keep`` rows of smallest loss (``keep``: an int, or one count
    per seed, ``(...,)``); those of weight 0 rank last and are never kept. Chosen on the device
    without a host read: each row's rank is compared with ``keep``, so no shape depends on data."""
    ranked = losses.detach()
    if weight is not None:
        ranked = ranked.masked_fill(weight == 0, math.inf)
    order = ranked.argsort(dim=-1, stable=True)
    positions = torch.arange(ranked.shape[-1], device=ranked.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(-1, order, positions)
    # An int compares as it is: making it a device tensor would copy from the host at every step.
    below = rank < (keep.unsqueeze(-1) if isinstance(keep, Tensor) else keep)
    mask = below.to(ranked.dtype)
    return mask if weight is None else mask * weight


def _forget_rate(forget_rate: float | None, noise_rate: float | None) -> float:
    """tau: ``forget_rate`` where given, else the run's ``noise_rate``; one line naming what to set."""
    tau = forget_rate if forget_rate is not None else noise_rate
    if tau is None:
        raise ValueError(
            "coteaching needs its forget rate: set forget_rate=... (the share of each batch to leave out, "
            "their code's default is the noise rate), or train on labels whose noise the run knows, "
            "which tells it noise_rate"
        )
    name = "forget_rate" if forget_rate is not None else "noise_rate"
    if not (math.isfinite(tau) and 0.0 <= tau < 1.0):
        raise ValueError(f"{name} (coteaching's forget rate) must lie in [0, 1), got {tau}")
    return float(tau)
