"""The chunked head of :class:`~labelemb.methods.label_embedding.method.LabelEmbedding`, for large label sets.

Once a batch has more rows than a chunk, ``fast_path=True`` computes
:func:`~labelemb.methods.label_embedding.loss.label_embedding_loss` chunk by chunk of rows with every
gradient formed in forward, as the other chunked heads (:mod:`~labelemb.methods.chunked`) do: at
most one chunk's ``n_c x 2m`` logits exist at a time, so its peak memory stays below that of a
plain ``cross_entropy(linear(h))`` over the batch (``bench/vocab.py``). The tests pin its value
and gradients to the formula.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import Rows
from ..chunked import (
    LinearGrads,
    Precision,
    fuses,
    scaled_grads,
    subtract_at_labels,
    without_rows_that_overflow,
)
from .loss import Normalisation, normalisation


def chunked_label_embedding_loss(
    features: Tensor,
    rows: Rows,
    chunk_rows: int,
    w: Tensor,
    b: Tensor,
    embedding: tuple[Tensor, ...],
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
    nlp: bool,
    workspace: Workspace | None = None,
) -> tuple[Tensor, Tensor]:
    """The loss and its five terms (stacked) through :class:`ChunkedLabelEmbeddingHead`.

    ``w`` and ``b`` are the merged ``[o1; o2]`` layer's; ``embedding`` is ``(E,)``, or
    ``(A, B, c)`` (``B`` as an ``nn.Linear(k, m)`` weight) when compressed. ``workspace`` holds
    the chunk-sized buffers; pass the same one every step to keep them (a fresh one otherwise).
    """
    h, label = rows.counted(features)
    distinct, inverse = torch.unique(label, sorted=True, return_inverse=True)
    grouped = inverse.argsort(stable=True)  # rows of one label together: e once per label and chunk
    settings = _Settings(w_gold, w_soft, tau, alpha, nlp, rows.count, workspace or Workspace())
    return ChunkedLabelEmbeddingHead.apply(
        h.index_select(0, grouped), w, b, distinct, inverse[grouped], settings, chunk_rows, *embedding
    )


@dataclass
class _Settings:
    """What one step of the loss depends on besides the tensors."""

    w_gold: float
    w_soft: float
    tau: float
    alpha: float
    nlp: bool
    count: Tensor | float  # rows that count (this process's share of them when distributed)
    workspace: Workspace

    @property
    def normalised(self) -> Normalisation:
        return normalisation(self.count, self.nlp)


class ChunkedLabelEmbeddingHead(torch.autograd.Function):
    """The loss of Sun et al. (2017), Section 2, chunk by chunk of rows, gradients formed in forward.

    Takes the features of the rows that count, grouped by label (``inverse`` maps each row to its
    label in ``distinct``, ascending), so that a chunk's rows have a few neighbouring labels: ``e``
    is formed for those (once per chunk) and its gradient passed back into ``E`` (or ``A``, ``B``,
    ``c``) before the next chunk. The gradients are the closed forms of the single-model head
    (:class:`~labelemb.methods.label_embedding.fast.LabelEmbeddingHead`); the emb term's gradient
    is accumulated without its normaliser (the batch's mask count, known only after the last
    chunk, unless ``nlp``) and scaled at the end. Memory: one chunk's
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
        ctx.set_materialize_grads(False)  # no tensor of zeros for the terms nobody differentiates
        return loss, values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_terms):  # type: ignore[override]
        grad_h, grad_w, grad_b, *grad_embedding = scaled_grads(ctx.saved_tensors, grad_loss, ctx.dtypes)
        return grad_h, grad_w, grad_b, None, None, None, None, *grad_embedding


def _label_embedding_chunks(h, w, b, distinct, inverse, settings: _Settings, chunk_rows: int, embedding):
    """One pass of :class:`ChunkedLabelEmbeddingHead` over the rows ``h`` (grouped by label)."""
    m = w.shape[0] // 2
    precision = Precision(h)
    with precision.manual():
        w_c, b_c = precision.cast(w), precision.cast(b)
        grads = LinearGrads(h, w, out_rows=slice(0, m))  # z2 = o2(sg(h)): only o1 reaches h
        table = EmbeddingTable(embedding, precision)
        normalised = settings.normalised
        # Sums over rows of log p1[y], q . log p1, log p2[y], the penalty, the mask, and mask Te . log q.
        sums = h.new_zeros(6, dtype=torch.float32)
        # First and last label of every chunk, read at once: one host read per step.
        firsts = inverse[::chunk_rows].tolist()
        lasts = inverse[chunk_rows - 1 :: chunk_rows].tolist() + inverse[-1:].tolist()
        overflowing = []
        fused = fuses(h.device)
        workspace = settings.workspace
        if not fused:  # a compiled chunk allocates its own (the caching allocator keeps them)
            workspace.reserve(min(chunk_rows, h.shape[0]), m, h)
        chunk_rows_of = fused_chunk_rows() if fused else _chunk_rows
        scalars = (
            settings.w_gold,
            settings.w_soft,
            settings.tau,
            settings.alpha,
            settings.count,
            settings.nlp,
        )
        for number, start in enumerate(range(0, h.shape[0], chunk_rows)):
            chunk = slice(start, start + chunk_rows)
            labels = distinct[firsts[number] : lasts[number] + 1]
            h_c, local = precision.cast(h[chunk]), inverse[chunk] - firsts[number]
            e = table.rows(labels)
            q = F.log_softmax(e, dim=-1)
            lse = e[:, 0] - q[:, 0]  # log sum exp(e) of each label
            q = q.exp_()
            buffers = (None,) * 5 if fused else workspace.take(h_c.shape[0])
            terms, grad_z, teacher = chunk_rows_of(h_c, w_c, b_c, labels, local, q, *scalars, buffers)
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
            # dL/de over the emb term's normaliser where it is known before the last chunk
            table.add_grad(labels, e, grad_e if normalised.emb is None else grad_e.div_(normalised.emb))
        count = settings.count
        normaliser = normalised.emb_divisor(lambda: sums[4])
        penalty = normalised.divide_penalty(sums[3])
        values = torch.stack(
            [-sums[0] / count, -sums[1] / count, -sums[2] / count, -sums[5] / normaliser, penalty]
        )
        loss = values @ values.new_tensor([settings.w_gold, settings.w_soft, 1.0, 1.0, 1.0])
    # The rows' gradients carry their normalisers already (_chunk_rows), E's too when it was known.
    table_grads = table.grads if normalised.emb is not None else table.scaled(1.0 / normaliser)
    return loss, values, (grads.h, grads.w, grads.b, *table_grads), overflowing


def _chunk_rows(
    h: Tensor,
    w: Tensor,
    b: Tensor,
    labels: Tensor,
    local: Tensor,
    q: Tensor,
    w_gold: float,
    w_soft: float,
    tau: float,
    alpha: float,
    count: Tensor | float,
    nlp: bool,
    buffers: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, Tensor]:
    """One chunk of rows: their terms, ``dL/dz`` and the emb term's masked teachers.

    ``z = [z1, z2] = h W^T + b`` (n, 2m), in float32; row ``i`` has label ``labels[local[i]]`` and
    ``q`` holds ``softmax(e)`` of the chunk's labels. Returns the rows' ``[log p1[y], q . log p1,
    log p2[y], penalty, mask]`` (n, 5), the gradient of the loss in ``z`` (n, 2m) with each term
    divided by its normaliser, and ``mask_i softmax(z2_i / tau)`` (n, m), the emb term's targets.
    The n x m tensors are written into ``buffers`` (the workspace's, reused from chunk to chunk),
    or are new tensors where they are None: a pure function then, which ``torch.compile`` fuses
    (:func:`fused_chunk_rows`).
    """
    n, m = h.shape[0], q.shape[1]
    z_out, log_p_out, teacher_out, q_rows_out, z2_scaled_out = buffers
    normalised = normalisation(count, nlp)
    if z_out is None:
        z = torch.addmm(b, h, w.t()).float()
    elif h.dtype == torch.float32:
        z = torch.addmm(b, h, w.t(), out=z_out)
    else:
        z = z_out.copy_(torch.addmm(b, h, w.t()))
    label = labels.index_select(0, local)
    mask = (z[:, m:].argmax(-1) == label).to(z.dtype)  # learn E only where o2 is right
    log_p = torch.log_softmax(
        z.view(n, 2, m), dim=-1, out=None if log_p_out is None else log_p_out.view(n, 2, m)
    )
    # z2 / tau written out contiguous first: softmax would copy the strided z2 into a fresh tensor
    z2_scaled = torch.div(z[:, m:], tau, out=z2_scaled_out)
    teacher = torch.softmax(z2_scaled, dim=-1, out=teacher_out).mul_(mask[:, None])
    gold_log_p = log_p.gather(2, label[:, None, None].expand(n, 2, 1)).squeeze(-1)  # (n, 2)
    q_rows = torch.index_select(q, 0, local, out=q_rows_out)
    soft = torch.einsum("ij,ij->i", q_rows, log_p[:, 0])  # row-wise dot products, no n x m temporary
    p2_gold = gold_log_p[:, 1].exp()
    gap = p2_gold - alpha
    scale = 1.0 / count
    # The penalty's sum over rows is divided by its divisor at the end; its slope carries it now
    # (times scale, 1 / the number of rows that count, where it is their mean).
    penalty = normalised.multiply_penalty(normalised.penalty(gap))
    slope = normalised.multiply_penalty(normalised.slope(gap))
    if normalised.averages_penalty:
        slope = slope * scale
    terms = torch.stack([gold_log_p[:, 0], soft, gold_log_p[:, 1], penalty, mask], dim=1)

    grad = log_p.exp_()  # p1 and p2, in place of their logarithms
    grad1, grad2 = grad[:, 0], grad[:, 1]
    grad1.mul_(w_gold + w_soft).sub_(q_rows, alpha=w_soft)
    subtract_at_labels(grad1, label, w_gold).mul_(scale)  # (w p1 - w_gold onehot - w_soft q) / n
    subtract_at_labels(grad2, label, 1.0).mul_((scale - p2_gold * slope)[:, None])  # (p2 - onehot) ...
    return terms, grad.view(n, 2 * m), teacher


@functools.cache
def fused_chunk_rows() -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """:func:`_chunk_rows` through ``torch.compile``, on a device that
    :func:`~labelemb.methods.chunked.fuses`."""
    return torch.compile(_chunk_rows)


class Workspace:
    """The n x m buffers of :func:`_chunk_rows`, reused by every chunk and kept from step to step.

    Chunk-sized tensors allocated afresh cost page faults (large blocks go back to the system
    when freed, and come back untouched): allocating them once per step cost about 6 % of a
    whole DDTP training step (``bench/seq2seq_step.py``), once per chunk more. A method keeps one
    workspace, which grows to the largest chunk it has seen (at most about
    ``3.5 x AUTO_CHUNK_ENTRIES`` float32 entries with the automatic chunk size).
    """

    def __init__(self) -> None:
        self.wide: Tensor | None = None  # z, then log p and dL/dz: (2, rows, 2m)
        self.narrow: Tensor | None = None  # the teachers, q of each row, z2 / tau: (3, rows, m)

    def reserve(self, rows: int, m: int, like: Tensor) -> None:
        """Make room for chunks of ``rows`` rows of ``m`` labels, on ``like``'s device."""
        if self._fits(rows, m, like):
            return
        self.wide = self.narrow = None  # the old buffers go before the new ones come
        self.wide = like.new_empty((2, rows, 2 * m), dtype=torch.float32)
        self.narrow = like.new_empty((3, rows, m), dtype=torch.float32)

    def _fits(self, rows: int, m: int, like: Tensor) -> bool:
        wide = self.wide
        return (
            wide is not None
            and wide.shape[1] >= rows
            and wide.shape[2] == 2 * m
            and wide.device == like.device
        )

    @property
    def nbytes(self) -> int:
        """Bytes the buffers hold between steps (0 before the first chunked step)."""
        return sum(t.numel() * t.element_size() for t in (self.wide, self.narrow) if t is not None)

    def take(self, rows: int) -> tuple[Tensor, ...]:
        assert self.wide is not None and self.narrow is not None, "reserve() first"
        return self.wide[0, :rows], self.wide[1, :rows], *self.narrow[:, :rows]


class EmbeddingTable:
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
