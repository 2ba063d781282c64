"""The Label Embedding Network (Sun et al. 2017): soft labels learned during training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..stacking import linear, rows_of
from .base import Method, MethodOutput, Rows, gold, init_linear, per_process_share, world_size
from .chunked import (
    LinearGrads,
    Precision,
    check_chunk_size,
    counted_rows,
    rows_per_chunk,
    scaled_grads,
    subtract_at_labels,
    without_rows_that_overflow,
)
from .label_embedding_fixed import EMBEDDING_KEY
from .registry import register

VARIANTS = ("released", "nlp", "paper")
TERMS = ("ce_o1", "soft_o1", "ce_o2", "emb", "penalty")

# Above this many entries, label_representation() of a compressed embedding returns the
# (m, k) label codes instead of materialising the m x m soft-label matrix.
_MAX_MATERIALISED_ENTRIES = 4096 * 4096


@register("label_embedding")
class LabelEmbedding(Method):
    """Label Embedding Network, Sun et al. (2017), Section 2 and Appendix A.

    Two heads on the same features: ``z1 = o1(h)`` predicts, ``z2 = o2(sg(h))`` teaches the
    label embedding ``E`` (identity-initialised, ``e = E[y]``). With ``mask_i = [argmax z2_i = y_i]``
    the released code's loss (``variant="released"``, the default) is::

        L = beta H(y, softmax(z1)) + (1 - beta) H(sg(softmax(e)), softmax(z1))
          + H(y, softmax(z2))
          + sum_i mask_i H(sg(softmax(z2_i / tau)), softmax(e_i)) / (sum_i mask_i + 1e-8)
          + sum_i max(0, softmax(z2_i)[y_i] - alpha)

    ``variant="paper"`` weights the first two terms 1 and 1 (Eq. 14). ``variant="nlp"`` is the
    released seq2seq loss (``NaturalLanguageProcessing/models/loss.py``), exactly: every weight 1
    (no ``beta``), the two-sided penalty ``|softmax(z2)[y] - alpha|``, the soft term switched on
    after ``soft_warmup`` updates (default 20,000 as released; a float in (0, 1) is a fraction of
    ``total_updates``, which the trainer passes), and every term, the embedding term included,
    summed over non-ignored tokens and divided by their number::

        L = [sum_i H(y_i, p1_i) + sum_i H(y_i, p2_i) + sum_i mask_i H(sg(softmax(z2_i / tau)), q_i)
             + sum_i |p2_i[y_i] - alpha| + [updates >= warm-up] sum_i H(sg(q_i), p1_i)] / n

    ``compressed_dim=k`` learns ``e = ReLU(A[y] B + c)`` with ``A`` (m x k), ``B`` (k x m)
    (Section 2.2, Eq. 15-16) and never builds an m x m matrix; ``None`` learns the full ``E``.
    Left out (``"auto"``), it follows each variant's source: the full ``E`` for ``released`` and
    ``paper``, ``k`` = the feature size for ``nlp`` (the release's seq2seq head: ``A ~ N(0, 1)``,
    ``B`` and ``c`` initialised as a default ``nn.Linear(k, m)``; the other variants scale ``B``
    to unit-variance ``A[y] B`` and start ``c`` at 0). Prediction uses ``z1`` only.

    Large label sets (a vocabulary): once a batch has more rows than ``chunk_size`` (None: chosen
    by :func:`~labelemb.methods.chunked.rows_per_chunk` for ``2m`` outputs), the head works
    through the rows that count in chunks (:class:`_ChunkedLabelEmbeddingHead`): at most one
    chunk's logits, probabilities and gradients exist at a time, ``e`` is formed once per
    distinct label of each chunk (rows are grouped by label), and the step returns
    ``logits=None``. Its peak memory stays below that of a plain ``cross_entropy(linear(h))`` on
    the same batch (``bench/vocab.py``).

    Parameters: ``heads`` (one ``Linear(in_features, 2m)``: rows ``[:m]`` are o1, ``[m:]`` are
    o2; :meth:`output_layer` gives each as views) and ``embedding`` (or ``codes`` and ``expand``).

    The loss is :func:`label_embedding_loss`, the equation above in code. With ``fast_path``
    (the default) a single-model step computes the same loss with hand-written closed-form
    gradients (:class:`_LabelEmbeddingHead`, pinned to the formula by the tests); stacked seeds
    and ``fast_path=False`` run the formula through autograd.

    Rows with non-finite features or logits (``z1``, ``z2``) are left out of every term and of
    every gradient that reaches ``E`` (or ``A``, ``B``, ``c`` when compressed), ``o1`` and
    ``o2``, as ignored rows are, so a bad batch cannot make them non-finite; the loss then is NaN
    and those rows' features get a NaN gradient, so the loop (or an AMP ``GradScaler``) sees the
    bad step (see :class:`~labelemb.methods.base.Method`). An empty batch does not count towards
    the ``nlp`` warm-up.
    """

    stackable = True

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        tau: float = 2.0,
        alpha: float = 0.9,
        beta: float | None = None,
        variant: str = "released",
        compressed_dim: int | Literal["auto"] | None = "auto",
        soft_warmup: int | float | None = None,
        total_updates: int | None = None,
        init_std: float | None = None,
        fast_path: bool = True,
        chunk_size: int | None = None,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(in_features, num_classes, ignore_index)
        check_chunk_size(chunk_size)
        if variant not in VARIANTS:
            raise ValueError(f"unknown label_embedding variant {variant!r}; choose one of {VARIANTS}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if beta is not None and variant != "released":
            raise ValueError(
                f"beta weighs the o1 terms of variant 'released' only; variant {variant!r} weighs both 1 "
                "(as its source does): leave beta out"
            )
        beta = 0.5 if beta is None else beta
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if compressed_dim == "auto":
            compressed_dim = in_features if variant == "nlp" else None
        if compressed_dim is not None and (not isinstance(compressed_dim, int) or compressed_dim < 1):
            raise ValueError(f"compressed_dim must be a positive rank, got {compressed_dim}")
        self.tau = tau
        self.alpha = alpha
        self.beta = beta
        self.variant = variant
        self.compressed_dim = compressed_dim
        self.fast_path = fast_path
        self.chunk_size = chunk_size
        self.soft_warmup = _warmup_updates(variant, soft_warmup, total_updates)

        # o1 and o2 live in one layer: rows [:m] are o1, rows [m:] are o2. One matrix product
        # serves both, and the optimiser updates two tensors instead of four.
        self.heads = _init_heads(in_features, num_classes, init_std)
        if compressed_dim is None:
            self.embedding = nn.Parameter(torch.eye(num_classes))
        else:
            self.codes = nn.Parameter(torch.randn(num_classes, compressed_dim))
            self.expand = nn.Linear(compressed_dim, num_classes)
            if variant != "nlp":  # scaled so that A[y] B has unit-variance entries at the start
                nn.init.normal_(self.expand.weight, std=compressed_dim**-0.5)
                nn.init.zeros_(self.expand.bias)
        # Counts the NLP variant's training steps, so its warm-up survives a checkpoint.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    def embedding_rows(self, labels: Tensor) -> Tensor:
        """The raw embedding rows ``e = E[y]`` (before softmax) for a batch of labels."""
        if self.compressed_dim is None:
            return rows_of(self.embedding, labels)
        return F.relu(linear(rows_of(self.codes, labels), self.expand.weight, self.expand.bias))

    def soft_labels(self, labels: Tensor) -> Tensor:
        """The learned soft label ``softmax(E[y])`` of each label."""
        return torch.softmax(self.embedding_rows(labels), dim=-1)

    def loss_weights(self) -> tuple[float, float]:
        """Weights of ``H(y, p1)`` and of the soft-label term ``H(softmax(e), p1)`` right now."""
        if self.variant == "paper":
            return 1.0, 1.0
        # Stacked seeds count their updates together: the first seed's count is every seed's.
        if self.variant == "nlp":  # every weight 1, the soft term after the warm-up (as released)
            return 1.0, float(int(self.num_updates.reshape(-1)[0]) >= self.soft_warmup)
        return self.beta, 1.0 - self.beta

    def forward(self, features: Tensor, target: Tensor, *, index: Tensor | None = None) -> MethodOutput:
        w_gold, w_soft = self.loss_weights()
        nlp = self.variant == "nlp"
        chunk_rows = rows_per_chunk(self.chunk_size, features.shape[0], 2 * self.num_classes)
        if self.fast_path and features.dim() == 2 and chunk_rows is not None:
            rows, _ = self.check_inputs(features, target)
            loss, stacked_terms = self._loss_in_chunks(features, rows, chunk_rows, w_gold, w_soft)
            z1, terms = None, dict(zip(TERMS, stacked_terms.unbind(-1)))
        elif self.fast_path and features.dim() == 2:
            # The same loss with its gradients in closed form (see _LabelEmbeddingHead), which
            # takes o1 and o2's outputs as one (N, 2m) product computed without autograd.
            w, b = self.heads.weight, self.heads.bias
            rows, z = self.check_inputs(features, target, lambda h: _both_heads(h, w, b))
            e = self.embedding_rows(rows.label)
            loss, z1, stacked_terms = _LabelEmbeddingHead.apply(
                rows.safe(features), w, b, z, e, rows, w_gold, w_soft, self.tau, self.alpha, nlp
            )
            terms = dict(zip(TERMS, stacked_terms.unbind(-1)))
        else:
            rows, (z1, z2) = self.check_inputs(features, target, self._both_outputs)
            e = self.embedding_rows(rows.label)
            loss, terms = label_embedding_loss(
                z1, z2, e, rows, w_gold=w_gold, w_soft=w_soft, tau=self.tau, alpha=self.alpha, nlp=nlp
            )
            terms = {name: value.detach() for name, value in terms.items()}
        if self.training and nlp and target.shape[-1]:  # an empty batch is no update
            self.num_updates += 1
        return rows.output(loss, z1, terms)

    def _loss_in_chunks(
        self, features: Tensor, rows: Rows, chunk_rows: int, w_gold: float, w_soft: float
    ) -> tuple[Tensor, Tensor]:
        """The loss and its terms through :class:`_ChunkedLabelEmbeddingHead`, rows grouped by label."""
        h, label = counted_rows(features, rows)
        distinct, inverse = torch.unique(label, sorted=True, return_inverse=True)
        grouped = inverse.argsort(stable=True)  # rows of one label together: e once per label and chunk
        settings = _Settings(w_gold, w_soft, self.tau, self.alpha, self.variant == "nlp", rows.count)
        embedding = (
            (self.embedding,)
            if self.compressed_dim is None
            else (self.codes, self.expand.weight, self.expand.bias)
        )
        w, b = self.heads.weight, self.heads.bias
        return _ChunkedLabelEmbeddingHead.apply(
            h.index_select(0, grouped), w, b, distinct, inverse[grouped], settings, chunk_rows, *embedding
        )

    def _both_outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``z1 = o1(h)`` and ``z2 = o2(sg(h))``: o2 never changes the backbone."""
        return linear(features, *self.output_layer(1)), linear(features.detach(), *self.output_layer(2))

    def logits(self, features: Tensor) -> Tensor:
        return linear(features, *self.output_layer(1))

    def output_layer(self, which: int) -> tuple[Tensor, Tensor]:
        """Weight and bias of ``o1`` (``which=1``) or ``o2`` (``which=2``), views into ``heads``."""
        if which not in (1, 2):
            raise ValueError(f"which must be 1 (o1, predicts) or 2 (o2, teaches E), got {which}")
        rows = slice(0, self.num_classes) if which == 1 else slice(self.num_classes, None)
        return self.heads.weight[..., rows, :], self.heads.bias[..., rows]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # Runs saved before o1 and o2 were merged into ``heads`` hold them as separate layers.
        old = [f"{prefix}o{i}.{kind}" for kind in ("weight", "bias") for i in (1, 2)]
        if all(key in state_dict for key in old):
            for kind in ("weight", "bias"):
                state_dict[f"{prefix}heads.{kind}"] = torch.cat(
                    [state_dict.pop(f"{prefix}o1.{kind}"), state_dict.pop(f"{prefix}o2.{kind}")]
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """Softmax rows of ``E`` (m x m); for a large compressed embedding, the codes ``A`` (m x k)."""
        if self.compressed_dim is not None and self.num_classes**2 > _MAX_MATERIALISED_ENTRIES:
            return self.codes.detach().clone()
        labels = torch.arange(self.num_classes, device=self.heads.weight.device)
        return self.soft_labels(labels).detach()

    def artifacts(self) -> dict[str, Tensor]:
        """The soft labels and, up to 4,096 labels, the raw ``E`` a fixed-embedding run can reuse."""
        tensors = super().artifacts()
        if self.num_classes <= 4096:
            tensors[EMBEDDING_KEY] = self.embedding_matrix()
        return tensors

    @torch.no_grad()
    def embedding_matrix(self) -> Tensor:
        """The raw m x m embedding ``E`` (materialised from ``A, B, c`` when compressed)."""
        labels = torch.arange(self.num_classes, device=self.heads.weight.device)
        return self.embedding_rows(labels).detach().clone()


def _warmup_updates(variant: str, soft_warmup: int | float | None, total_updates: int | None) -> int:
    """The ``nlp`` warm-up in updates: a count, or a fraction of ``total_updates`` such as 0.3."""
    if soft_warmup is None:
        return 20_000 if variant == "nlp" else 0  # the release's count
    if isinstance(soft_warmup, float) and 0.0 < soft_warmup < 1.0:
        if total_updates is None:
            raise ValueError(
                f"soft_warmup={soft_warmup} is a fraction of training: give total_updates= too (the "
                "trainer does), or give the warm-up as a number of updates"
            )
        return round(soft_warmup * total_updates)
    if soft_warmup < 0 or soft_warmup != int(soft_warmup):
        raise ValueError(
            f"soft_warmup must be a number of updates (a whole number >= 0) or a fraction of training "
            f"between 0 and 1, got {soft_warmup}"
        )
    return int(soft_warmup)


def label_embedding_loss(
    z1: Tensor,
    z2: Tensor,
    e: Tensor,
    rows: Rows,
    *,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
    nlp: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of :class:`LabelEmbedding` and its five terms, written as the equation reads.

    ``z1 = o1(h)``, ``z2 = o2(sg(h))`` (the caller detaches ``h``), ``e = E[y]``, one row per
    example (a leading seed dimension is allowed). Every ``sg`` of the equation is a ``detach``
    here, so autograd gives exactly the gradients the method defines: ``E`` learns only from
    ``emb``, ``o1`` from ``ce_o1`` and ``soft_o1``, ``o2`` from ``ce_o2`` and ``penalty``.
    ``nlp`` selects the released seq2seq variant (two-sided penalty; ``emb`` and the penalty
    averaged over rows rather than divided by the mask count or summed).
    """
    label = rows.label
    log_p1, log_p2, log_q = (F.log_softmax(z, dim=-1) for z in (z1, z2, e))
    ce_o1 = rows.mean(-gold(log_p1, label))  # H(y, softmax(z1))
    soft_o1 = rows.mean(-(log_q.detach().exp() * log_p1).sum(-1))  # H(sg(softmax(e)), softmax(z1))
    ce_o2 = rows.mean(-gold(log_p2, label))  # H(y, softmax(z2))

    teacher = torch.softmax(z2.detach() / tau, dim=-1)  # sg(softmax(z2 / tau))
    mask = (z2.argmax(-1) == label).to(z2.dtype)  # learn E only where o2 is right
    if rows.weight is not None:
        mask = mask * rows.weight
    per_row_emb = mask * -(teacher * log_q).sum(-1)  # mask_i H(teacher_i, softmax(e_i))
    if nlp:
        emb = per_row_emb.sum(-1) / rows.count
    else:
        emb = per_row_emb.sum(-1) / (per_process_share(mask.sum(-1)) + 1e-8)

    gap = gold(log_p2, label).exp() - alpha  # softmax(z2)[y] - alpha
    if nlp:
        penalty = rows.mean(gap.abs())
    else:
        # Summed over the global batch: data-parallel training averages gradients over processes.
        penalty = rows.sum(gap.clamp(min=0)) * world_size()

    loss = w_gold * ce_o1 + w_soft * soft_o1 + ce_o2 + emb + penalty
    return loss, dict(zip(TERMS, (ce_o1, soft_o1, ce_o2, emb, penalty)))


def _init_heads(in_features: int, num_classes: int, std: float | None) -> nn.Linear:
    """One layer holding o1 (rows ``[:m]``) and o2 (rows ``[m:]``), initialised as two layers.

    Building and initialising the halves as separate layers, in the order they once were,
    draws the same random numbers as runs made before the merge.
    """
    halves = [nn.Linear(in_features, num_classes) for _ in range(2)]
    for half in halves:
        init_linear(half, std)
    heads = torch.nn.utils.skip_init(nn.Linear, in_features, 2 * num_classes)
    with torch.no_grad():
        heads.weight.copy_(torch.cat([half.weight for half in halves]))
        heads.bias.copy_(torch.cat([half.bias for half in halves]))
    return heads


@torch.no_grad()
def _both_heads(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``[z1, z2] = h W^T + b``, (N, 2m), outside autograd: the fast path's gradients are by hand."""
    return torch.addmm(b, h, w.t())


class _LabelEmbeddingHead(torch.autograd.Function):
    """The fast path: both output layers and :func:`label_embedding_loss`, with gradients by hand.

    Every stop-gradient of the method is a constant here, so the gradients are short closed
    forms. Computing them directly, and ``o1`` and ``o2`` as one matrix product, instead of
    through a graph of some thirty small autograd nodes keeps the head cheap (bench/overhead.py
    measures what it still costs). With ``T1 = (w_gold onehot + w_soft softmax(e)) / n``
    and ``Te = softmax(z2 / tau) mask / Z``:

    - ``dL/dz1 = p1 rowsum(T1) - T1`` (plus whatever reaches the returned logits ``z1``)
    - ``dL/dz2 = (p2 - onehot) (1/n - c p2[y])`` with ``c`` the penalty's slope in ``p2[y]``
    - ``dL/de  = softmax(e) rowsum(Te) - Te``
    - ``dL/dh = dL/dz1 W1`` only: ``z2 = o2(sg(h))`` never reaches the backbone.

    The loss value takes no part in training (backward uses the closed forms), so it and the
    logged terms come from one weighted sum over rows. The tests check all of it against autograd
    through the plain formula and against hand computations.
    """

    @staticmethod
    def forward(ctx, h, w, b, z, e, rows: Rows, w_gold, w_soft, tau, alpha, nlp):  # type: ignore[override]
        # Written for few tensor operations: at m = 10 each costs more in dispatch than in arithmetic.
        # z = [o1(h), o2(h)] = h W^T + b comes in computed (by _both_heads): the input check reads it.
        n, m = e.shape
        z2 = z[:, m:]
        label = rows.label[:, None]
        weight = None if rows.weight is None else rows.weight[:, None]
        row_scale = rows.scale()
        # o1 and o2 in one call; e apart, since 3N rows would cross the kernel's threading threshold
        log_p = F.log_softmax(z.view(n, 2, m), dim=-1)
        p = log_p.exp()
        p1, p2 = p[:, 0], p[:, 1]
        log_q = F.log_softmax(e, dim=-1)
        q = log_q.exp()
        onehot = torch.zeros_like(e).scatter_(1, label, 1.0)
        teacher = torch.softmax(z2 / tau, dim=-1)

        correct = (z2.argmax(-1, keepdim=True) == label).to(z.dtype)
        if weight is not None:
            correct = correct * weight
        normaliser = rows.count if nlp else per_process_share(correct.sum()) + 1e-8
        mask = correct / normaliser
        target_e = teacher * mask
        gap = p2.gather(1, label) - alpha  # o2's gold probability minus alpha
        penalty_rows, slope = (gap.abs(), gap.sign()) if nlp else (gap.clamp(min=0), (gap > 0).to(z.dtype))
        if weight is not None:
            penalty_rows, slope = penalty_rows * weight, slope * weight
        if nlp:
            penalty_rows, slope = penalty_rows / rows.count, slope / rows.count
        elif world_size() > 1:  # a sum over the global batch: gradients get averaged over processes
            penalty_rows, slope = penalty_rows * world_size(), slope * world_size()

        loss, terms = _loss_and_terms(
            log_p, log_q, label, q, target_e, penalty_rows, weight, rows.count, w_gold, w_soft
        )

        # The gradients are closed forms of what is at hand: form them now, scale them in backward.
        # Rows of onehot, softmax(e) and the teacher sum to 1, which shortens dL/dz1 and dL/de.
        target1 = torch.add(onehot * w_gold, q, alpha=w_soft)
        grad_z = torch.cat(
            [
                (p1 * (w_gold + w_soft) - target1) * row_scale,
                (p2 - onehot) * (row_scale - (gap + alpha) * slope),
            ],
            dim=1,
        )
        grad_e = (q - teacher) * mask
        ctx.mark_non_differentiable(terms)
        ctx.save_for_backward(h, w, grad_z, grad_e)
        ctx.e_dtype = e.dtype
        return loss, z[:, :m], terms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_logits, grad_terms):  # type: ignore[override]
        h, w, grad_z, grad_e = ctx.saved_tensors
        m = grad_e.shape[1]
        grad_z = grad_z * grad_loss
        if grad_logits is not None:  # someone also differentiated the returned logits
            grad_z[:, :m] += grad_logits
        # Under autocast h may be bf16 while the gradients are float32: multiply in float32 and
        # hand each input a gradient of its own dtype.
        grad_h = (grad_z[:, :m] @ w[:m].to(grad_z.dtype)).to(h.dtype) if ctx.needs_input_grad[0] else None
        grad_w = (grad_z.t() @ h.to(grad_z.dtype)).to(w.dtype)
        return grad_h, grad_w, grad_z.sum(0), None, (grad_e * grad_loss).to(ctx.e_dtype), *([None] * 6)


def _loss_and_terms(
    log_p: Tensor,
    log_q: Tensor,
    label: Tensor,
    q: Tensor,
    target_e: Tensor,
    penalty_rows: Tensor,
    weight: Tensor | None,
    count: Tensor | float,
    w_gold: float,
    w_soft: float,
) -> tuple[Tensor, Tensor]:
    """The loss and its five terms (in ``TERMS`` order) from one sum over rows, in few operations.

    Per row: ``log p1[y]``, ``q . log p1``, ``log p2[y]``, ``Te . log q`` and the penalty.
    """
    gold = log_p.gather(2, label[:, None].expand(-1, 2, 1))
    per_row = torch.cat(
        [
            gold[:, 0],
            (q * log_p[:, 0]).sum(-1, keepdim=True),
            gold[:, 1],
            (target_e * log_q).sum(-1, keepdim=True),
            penalty_rows,
        ],
        dim=1,
    )
    if weight is not None:
        per_row[:, :3] *= weight
    sums = per_row.sum(0)
    if isinstance(count, Tensor):
        sums[:3] /= count
        count = 1.0
    c = -1.0 / count
    # Row 0 turns the sums into the terms, row 1 into the weighted loss.
    coefficients = sums.new_tensor([c, c, c, -1.0, 1.0, c * w_gold, c * w_soft, c, -1.0, 1.0]).view(2, 5)
    return sums @ coefficients[1], sums * coefficients[0]


@dataclass
class _Settings:
    """What one step of the loss depends on besides the tensors."""

    w_gold: float
    w_soft: float
    tau: float
    alpha: float
    nlp: bool
    count: Tensor | float  # rows that count (this process's share of them when distributed)


class _ChunkedLabelEmbeddingHead(torch.autograd.Function):
    """:func:`label_embedding_loss` chunk by chunk of rows, with every gradient formed in forward.

    Takes the features of the rows that count, grouped by label (``inverse`` maps each row to its
    label in ``distinct``, ascending), so that a chunk's rows have a few neighbouring labels: ``e``
    is formed for those (once per chunk) and its gradient passed back into ``E`` (or ``A``, ``B``,
    ``c``) before the next chunk. The gradients are the closed forms of :class:`_LabelEmbeddingHead`;
    the emb term's gradient is accumulated without its normaliser (the batch's mask count, known
    only after the last chunk, unless ``nlp``) and scaled at the end. Memory: one chunk's
    ``n_c x 2m`` logits and the tensors formed from them, the chunk's ``e`` (at most ``n_c x m``),
    and float32 gradient accumulators of the parameters and features.
    """

    @staticmethod
    def forward(ctx, h, w, b, distinct, inverse, settings, chunk_rows, *embedding):  # type: ignore[override]
        def run(rows: Tensor | None, count: Tensor | float):
            if rows is None:
                return _label_embedding_chunks(h, w, b, distinct, inverse, settings, chunk_rows, embedding)
            settings_kept = dataclasses.replace(settings, count=count)
            return _label_embedding_chunks(
                h[rows], w, b, distinct, inverse[rows], settings_kept, chunk_rows, embedding
            )

        loss, values, grads = without_rows_that_overflow(run, h.shape[0], settings.count)
        ctx.save_for_backward(*grads)
        ctx.dtypes = [t.dtype for t in (h, w, b, *embedding)]
        ctx.mark_non_differentiable(values)
        return loss, values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_terms):  # type: ignore[override]
        grad_h, grad_w, grad_b, *grad_embedding = scaled_grads(ctx.saved_tensors, grad_loss, ctx.dtypes)
        return grad_h, grad_w, grad_b, None, None, None, None, *grad_embedding


def _label_embedding_chunks(h, w, b, distinct, inverse, settings: _Settings, chunk_rows: int, embedding):
    """One pass of :class:`_ChunkedLabelEmbeddingHead` over the rows ``h`` (grouped by label)."""
    m = w.shape[0] // 2
    precision = Precision(h)
    with precision.manual():
        w_c, b_c = precision.cast(w), precision.cast(b)
        grads = LinearGrads(h, w, out_rows=slice(0, m))  # z2 = o2(sg(h)): only o1 reaches h
        table = _EmbeddingTable(embedding, precision)
        # Sums over rows of log p1[y], q . log p1, log p2[y], the penalty, the mask, and mask Te . log q.
        sums = h.new_zeros(6, dtype=torch.float32)
        # First and last label of every chunk, read at once: one host read per step.
        firsts = inverse[::chunk_rows].tolist()
        lasts = inverse[chunk_rows - 1 :: chunk_rows].tolist() + inverse[-1:].tolist()
        overflowing = []
        workspace = _Workspace(min(chunk_rows, h.shape[0]), m, h)
        for number, start in enumerate(range(0, h.shape[0], chunk_rows)):
            chunk = slice(start, start + chunk_rows)
            labels = distinct[firsts[number] : lasts[number] + 1]
            h_c, local = precision.cast(h[chunk]), inverse[chunk] - firsts[number]
            e = table.rows(labels)
            q = F.log_softmax(e, dim=-1)
            lse = e[:, 0] - q[:, 0]  # log sum exp(e) of each label
            q = q.exp_()
            terms, grad_z, teacher = _chunk_rows(h_c, w_c, b_c, labels, local, q, settings, workspace)
            overflowing.append(~torch.isfinite(terms).all(-1))
            grads.add(chunk, h_c, precision.cast(grad_z), w_c)
            sums[:5] += terms.sum(0)
            # Per label: the sum of its rows' masked teachers (each sums to its mask), the emb
            # term's share, sum Te . log q = masked . e - mask count x lse, and
            # dL/de = mask count x softmax(e) - masked (over the normaliser, when it is known).
            masked = teacher.new_zeros(e.shape).index_add_(0, local, teacher)
            masks = masked.new_zeros(e.shape[0]).index_add_(0, local, terms[:, 4])
            sums[5] += torch.vdot(masked.view(-1), e.view(-1)) - masks @ lse
            grad_e = q.mul_(masks[:, None]).sub_(masked)
            table.add_grad(labels, e, grad_e.div_(settings.count) if settings.nlp else grad_e)
        count = settings.count
        normaliser = count if settings.nlp else per_process_share(sums[4]) + 1e-8
        penalty = sums[3] / count if settings.nlp else sums[3]
        values = torch.stack(
            [-sums[0] / count, -sums[1] / count, -sums[2] / count, -sums[5] / normaliser, penalty]
        )
        loss = values @ values.new_tensor([settings.w_gold, settings.w_soft, 1.0, 1.0, 1.0])
    # The rows' gradients carry their normalisers already (_chunk_rows), E's too when it was known.
    table_grads = table.grads if settings.nlp else table.scaled(1.0 / normaliser)
    return loss, values, (grads.h, grads.w, grads.b, *table_grads), overflowing


def _chunk_rows(
    h: Tensor,
    w: Tensor,
    b: Tensor,
    labels: Tensor,
    local: Tensor,
    q: Tensor,
    settings: _Settings,
    workspace: _Workspace,
) -> tuple[Tensor, Tensor, Tensor]:
    """One chunk of rows: their terms, ``dL/dz`` and the emb term's masked teachers.

    ``z = [z1, z2] = h W^T + b`` (n, 2m), in float32; row ``i`` has label ``labels[local[i]]`` and
    ``q`` holds ``softmax(e)`` of the chunk's labels. Returns the rows' ``[log p1[y], q . log p1,
    log p2[y], penalty, mask]`` (n, 5), the gradient of the loss in ``z`` (n, 2m) with each term
    divided by its normaliser, and ``mask_i softmax(z2_i / tau)`` (n, m), the emb term's targets.
    The n x m tensors live in ``workspace``, reused from chunk to chunk.
    """
    n = h.shape[0]
    z, log_p, teacher, q_rows = workspace.take(n)
    m = teacher.shape[1]
    if h.dtype == torch.float32:
        torch.addmm(b, h, w.t(), out=z)
    else:
        z.copy_(torch.addmm(b, h, w.t()))
    label = labels.index_select(0, local)
    mask = (z[:, m:].argmax(-1) == label).to(z.dtype)  # learn E only where o2 is right
    torch.log_softmax(z.view(n, 2, m), dim=-1, out=log_p.view(n, 2, m))
    torch.softmax(z[:, m:].div_(settings.tau), dim=-1, out=teacher).mul_(mask[:, None])  # z is spent
    log_p = log_p.view(n, 2, m)
    gold_log_p = log_p.gather(2, label[:, None, None].expand(n, 2, 1)).squeeze(-1)  # (n, 2)
    torch.index_select(q, 0, local, out=q_rows)
    soft = torch.einsum("ij,ij->i", q_rows, log_p[:, 0])  # row-wise dot products, no n x m temporary
    p2_gold = gold_log_p[:, 1].exp()
    gap = p2_gold - settings.alpha
    scale = 1.0 / settings.count
    if settings.nlp:
        penalty, slope = gap.abs(), gap.sign() * scale
    else:  # a sum over the global batch: data-parallel training averages gradients over processes
        penalty, slope = gap.clamp(min=0) * world_size(), (gap > 0).to(gap.dtype) * world_size()
    terms = torch.stack([gold_log_p[:, 0], soft, gold_log_p[:, 1], penalty, mask], dim=1)

    grad = log_p.exp_()  # p1 and p2, in place of their logarithms
    grad1, grad2 = grad[:, 0], grad[:, 1]
    grad1.mul_(settings.w_gold + settings.w_soft).sub_(q_rows, alpha=settings.w_soft)
    subtract_at_labels(grad1, label, settings.w_gold).mul_(scale)  # (w p1 - w_gold onehot - w_soft q) / n
    subtract_at_labels(grad2, label, 1.0).mul_((scale - p2_gold * slope)[:, None])  # (p2 - onehot) ...
    return terms, grad.view(n, 2 * m), teacher


class _Workspace:
    """The n x m buffers of :func:`_chunk_rows`, allocated once per step and reused by every chunk.

    Chunk-sized tensors freed and allocated afresh for each chunk cost page faults (large blocks
    go back to the system when freed); reusing them keeps the loop at the speed of its arithmetic.
    """

    def __init__(self, rows: int, m: int, like: Tensor) -> None:
        self.wide = like.new_empty((2, rows, 2 * m), dtype=torch.float32)  # z, then log p and dL/dz
        self.narrow = like.new_empty((2, rows, m), dtype=torch.float32)  # the teachers, q of each row

    def take(self, rows: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.wide[0, :rows], self.wide[1, :rows], self.narrow[0, :rows], self.narrow[1, :rows]


class _EmbeddingTable:
    """``e`` for a chunk's labels, full (``E[y]``) or compressed (``ReLU(A[y] B + c)``), and its gradients.

    ``add_grad`` passes ``dL/de`` of those labels back into float32 accumulators of the table's
    parameters (rows of ``E``; or ``A``'s rows, ``B`` and ``c``).
    """

    def __init__(self, parameters: tuple[Tensor, ...], precision: Precision) -> None:
        self.precision = precision
        self.compressed = len(parameters) == 3
        # cast once per step (a no-op in float32), not once per chunk
        self.parameters = tuple(precision.cast(p) for p in parameters) if self.compressed else parameters
        self.grads = [torch.zeros_like(p, dtype=torch.float32) for p in parameters]

    def rows(self, labels: Tensor) -> Tensor:
        if not self.compressed:
            return self.parameters[0].index_select(0, labels).float()
        codes, weight, bias = self.parameters
        return torch.addmm(bias, codes.index_select(0, labels), weight.t()).float().relu_()

    def add_grad(self, labels: Tensor, e: Tensor, grad_e: Tensor) -> None:
        if not self.compressed:
            self.grads[0].index_add_(0, labels, grad_e)
            return
        grad_pre = self.precision.cast(torch.ops.aten.threshold_backward(grad_e, e, 0.0))  # through the ReLU
        codes, weight, _ = self.parameters
        self.grads[0].index_add_(0, labels, (grad_pre @ weight).float())
        if grad_pre.dtype == torch.float32:  # in place: no m x k temporary per chunk
            self.grads[1].addmm_(grad_pre.t(), codes.index_select(0, labels))
        else:
            self.grads[1] += (grad_pre.t() @ codes.index_select(0, labels)).float()
        self.grads[2] += grad_pre.sum(0, dtype=torch.float32)

    def scaled(self, scale: Tensor | float) -> list[Tensor]:
        """The gradients times ``scale``, in place."""
        return [grad.mul_(scale) for grad in self.grads]
