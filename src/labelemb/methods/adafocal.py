"""AdaFocal: focal loss with a gamma per confidence bin, moved each epoch by the dev split's calibration."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..search_spaces import Space
from .abilities import Chunked, ReadsDev, Stackable
from .base import gold
from .chunked import subtract_at_labels
from .registry import register
from .targets import TargetMethod


@register("adafocal")
class AdaFocal(Stackable, Chunked, ReadsDev, TargetMethod):
    """Focal loss whose exponent is the gamma of the confidence bin a row's gold probability falls
    in, focal where it is positive and inverse focal where it is negative::

        L = -(1 - p_y)^g_b log p_y        g_b >= 0
        L = -(1 + p_y)^|g_b| log p_y      g_b < 0,     b: e_b <= sg(p_y) < e_(b+1)

    (the first bin open below, the last open above). At each epoch's end the dev split's predictions
    (:meth:`on_dev_predictions`) move each bin's gamma by the calibration there::

        g_b <- g_b exp(lam (C_b - A_b))    where g_b > 0, else g_b exp(-lam (C_b - A_b))
        g_b <- -s where 0 < g_b < s,   s where -s < g_b <= 0    (s = switch_pt)
        g_b <- min(max(g_b, gamma_min), gamma_max)

    with ``C_b`` and ``A_b`` the mean confidence (the largest probability) and the accuracy of the
    dev examples in bin ``b`` (both 0 where it holds none), and the training bins become those dev
    bins. The dev bins hold equal numbers of examples: their edges ``e_k`` are the dev confidences'
    values at the positions ``k n / B`` of their sorted list, interpolated linearly as
    ``numpy.interp`` does (``e_0`` the least, ``e_B`` the largest), and bin ``b`` holds the
    confidences in ``(e_b, e_(b+1)]``. Before the first update the bins are ``B`` of equal width on
    [0, 1] and every gamma is ``gamma_initial``.

    Ghosh, Schaaf & Gormley (NeurIPS 2022), "AdaFocal: Calibration-aware Adaptive Focal Loss", as the
    authors' code computes it (``losses/adafocal.py``'s ``AdaFocal``, the gamma update of
    ``update_bin_stats`` from ``adaECE_error_mukhoti``'s bins in ``utils/metrics.py``, made at the
    epoch's end in ``utils/train_utils.py``; the paper's text was not at hand here) and with its
    defaults: ``lam = 1``, ``gamma_initial = 1``, ``gamma_max = 20``, ``gamma_min = -2``,
    ``switch_pt = 0.2`` and ``num_bins = 15``. As theirs, the bin is chosen by the detached gold
    probability while the dev bins are of the largest probability, and the weight is differentiated
    in full: the gradient in the logits is ``c (p - onehot(y))`` with
    ``c = w - g_b p_y w log p_y / u``, ``u`` the weight's base (``1 - p_y`` or ``1 + p_y``) and
    ``w = u^|g_b|``. The bin statistics are computed in float64 (theirs in float32); dev rows
    ignored or not finite are left out of them, and an update without any dev row changes nothing.

    The gammas ``gamma`` ``(B,)`` and the inner edges ``edges`` ``(B - 1,)`` are float64 buffers:
    a checkpoint holds them, and a resumed run goes on with them. The loss is averaged over the rows
    that count (theirs sums over the batch); where ``1 - p_y`` rounds to 0 it is kept at the dtype's
    smallest normal number, as focal's, in place of their ``+ 1e-20``. ``ce`` is logged beside it.

    Large label sets: ``chunk_size`` as for ``onehot``, with the gradient above in closed form.
    """

    serves: ClassVar[frozenset[str]] = frozenset({"class"})
    cannot_serve: ClassVar[dict[str, str]] = {
        "token": (
            "its gammas follow the dev split's classified examples at each epoch's end, and a sequence "
            "task decodes its dev split instead"
        ),
        "tags": (
            "its gammas are binned by the gold class's softmax probability and moved by the dev "
            "split's top-1 confidence and accuracy; a tag set has no one gold class or top-1 "
            "prediction"
        ),
    }
    # lam, the update's step (constructor: >= 0): their 1 inside. A bin's calibration gap is at most 1,
    # so below 0.1 a gamma moves by under 10 % an epoch, next to a fixed per-bin focal loss; past 10 one
    # epoch's gap of 0.3 multiplies it by 20 and the gammas swing between their bounds. Log: it scales
    # the exponent.
    search_space: ClassVar[dict[str, Space]] = {"lam": Space.floats(0.1, 10.0, log=True)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        lam: float = 1.0,
        gamma_initial: float = 1.0,
        gamma_max: float = 20.0,
        gamma_min: float = -2.0,
        switch_pt: float = 0.2,
        num_bins: int = 15,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if isinstance(num_bins, bool) or int(num_bins) != num_bins or num_bins < 1:
            raise ValueError(f"num_bins must be a whole number >= 1 (the confidence bins), got {num_bins}")
        if not (math.isfinite(lam) and lam >= 0.0):
            raise ValueError(f"lam must be a finite number >= 0 (the gamma update's step), got {lam}")
        if not (math.isfinite(switch_pt) and switch_pt >= 0.0):
            raise ValueError(f"switch_pt must be a finite number >= 0 (focal turns inverse), got {switch_pt}")
        if not all(map(math.isfinite, (gamma_min, gamma_initial, gamma_max))) or not (
            gamma_min <= gamma_initial <= gamma_max
        ):
            raise ValueError(
                "gamma_min <= gamma_initial <= gamma_max must hold between finite numbers, got "
                f"{gamma_min}, {gamma_initial}, {gamma_max}"
            )
        self.lam = lam
        self.gamma_initial = gamma_initial
        self.gamma_max = gamma_max
        self.gamma_min = gamma_min
        self.switch_pt = switch_pt
        self.num_bins = int(num_bins)
        self.register_buffer("gamma", torch.full((self.num_bins,), float(gamma_initial), dtype=torch.float64))
        # Equal widths, each edge k * (1 / B) as theirs (not k / B, which may round otherwise).
        inner = torch.arange(1, self.num_bins, dtype=torch.float64) * (1.0 / self.num_bins)
        self.register_buffer("edges", inner)

    # ------------------------------------------------------------------ the loss

    def row_gammas(self, log_p_y: Tensor) -> Tensor:
        """Each row's gamma: that of the bin its detached gold probability falls in (``(N,)``, or
        ``(S, N)`` stacked), in ``log_p_y``'s dtype."""
        p_y = log_p_y.detach().exp().to(torch.float64)
        bins = (p_y.unsqueeze(-1) >= self.edges.unsqueeze(-2)).sum(-1)
        return self.gamma.gather(-1, bins).to(log_p_y.dtype)

    def focal_terms(self, log_p_y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each row's loss ``-u^|g| log p_y``, its gamma ``g`` and the weight's base ``u``: ``1 - p_y``
        (from expm1, kept from 0 as focal's) where ``g >= 0``, ``1 + p_y`` where ``g < 0``."""
        gamma = self.row_gammas(log_p_y)
        one_minus = (-torch.expm1(log_p_y)).clamp(min=torch.finfo(log_p_y.dtype).tiny)
        base = torch.where(gamma < 0, 1.0 + log_p_y.exp(), one_minus)
        return -base.pow(gamma.abs()) * log_p_y, gamma, base

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p_y = gold(F.log_softmax(logits, dim=-1), label)
        focal, _, _ = self.focal_terms(log_p_y)
        return {"adafocal": focal, "ce": -log_p_y}

    def row_terms(self) -> dict[str, float]:
        return {"adafocal": 1.0, "ce": 0.0}

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        """Each row's ``[adafocal, -log p_y]`` and the loss's gradient in the logits ``c (p - onehot(y))``."""
        log_p = F.log_softmax(logits, dim=-1)
        log_p_y = log_p.gather(1, label[:, None]).squeeze(1)
        focal, gamma, base = self.focal_terms(log_p_y)
        weight = base.pow(gamma.abs())
        # The weight's own derivative, taken with the log: for either base, d u / d p_y = -sign(g).
        factor = weight - gamma * log_p_y.exp() * log_p_y * weight / base
        grad = subtract_at_labels(log_p.exp_(), label, 1.0).mul_(factor[:, None])
        return torch.stack([focal, -log_p_y], dim=1), grad

    # ------------------------------------------------------------------ the update

    @torch.no_grad()
    def on_dev_predictions(self, logits: Tensor, labels: Tensor) -> None:
        """Each bin's gamma moved by the dev split's calibration there, and the training bins set to
        the dev bins (see the class); stacked, each seed from its own predictions."""
        gammas = self.gamma.view(-1, self.num_bins)
        edges = self.edges.view(gammas.shape[0], self.num_bins - 1)
        seeds = zip(logits.reshape(-1, *logits.shape[-2:]), labels.reshape(-1, labels.shape[-1]))
        for s, (z, y) in enumerate(seeds):
            counted = (y != self.ignore_index) & torch.isfinite(z).all(-1)
            if not bool(counted.any()):
                continue
            log_confidence, predicted = F.log_softmax(z[counted].double(), dim=-1).max(dim=-1)
            confidence, hits = log_confidence.exp(), (predicted == y[counted]).double()
            bounds = equal_mass_edges(confidence, self.num_bins)
            gammas[s] = self.updated(gammas[s], bin_gaps(confidence, hits, bounds))
            edges[s] = bounds[1:-1]

    def updated(self, gamma: Tensor, gap: Tensor) -> Tensor:
        """The gammas after an update by each bin's ``C_b - A_b``: the step, the switch between focal
        and inverse focal, the clip."""
        moved = torch.where(gamma > 0, gamma * torch.exp(self.lam * gap), gamma * torch.exp(-self.lam * gap))
        s = self.switch_pt
        sign_switched = torch.where(moved > 0, moved.new_tensor(-s), moved.new_tensor(s))
        switched = torch.where(moved.abs() < s, sign_switched, moved)
        return switched.clamp(max=self.gamma_max).clamp(min=self.gamma_min)


def equal_mass_edges(values: Tensor, bins: int) -> Tensor:
    """``bins + 1`` edges of ``values`` ``(n,)``: the sorted values read at the positions
    ``k n / bins`` and interpolated linearly between neighbours, past the last the largest value
    (``numpy.interp(linspace(0, n, bins + 1), arange(n), sort(values))``)."""
    ordered = values.sort().values
    n = ordered.numel()
    position = torch.arange(bins + 1, dtype=torch.float64, device=values.device) * (n / bins)
    position[-1] = n
    below = position.floor().long().clamp(max=n - 1)
    above = (below + 1).clamp(max=n - 1)
    between = ordered[below] + (ordered[above] - ordered[below]) * (position - below)
    return torch.where(position >= n - 1, ordered[-1], between)


def bin_gaps(confidence: Tensor, hits: Tensor, bounds: Tensor) -> Tensor:
    """Each bin's mean confidence less its accuracy, over the values in ``(bounds[b], bounds[b + 1]]``;
    0 for a bin that holds none."""
    inside = (confidence > bounds[:-1, None]) & (confidence <= bounds[1:, None])
    count = inside.sum(-1)
    weights, share = inside.to(confidence.dtype), count.clamp(min=1)
    gap = weights @ confidence / share - weights @ hits / share
    return torch.where(count > 0, gap, 0.0)
