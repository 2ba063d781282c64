"""The Label Embedding Network (Sun et al. 2017): soft labels learned during training."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..stacking import linear, rows_of
from .base import Method, MethodOutput, Rows, gold, per_process_share, world_size
from .chunked import check_chunk_size, rows_per_chunk
from .label_embedding_chunked import Workspace, chunked_label_embedding_loss
from .label_embedding_chunked import _EmbeddingTable as _EmbeddingTable  # re-exported: tests patch it here
from .label_embedding_fast import LabelEmbeddingHead, both_heads
from .label_embedding_fixed import EMBEDDING_KEY
from .label_embedding_heads import init_heads, merge_separate_heads
from .registry import register

VARIANTS = ("released", "nlp", "paper")
TERMS = ("ce_o1", "soft_o1", "ce_o2", "emb", "penalty")

# Above this many entries, label_representation() of a compressed embedding returns the
# (m, k) label codes instead of materialising the m x m soft-label matrix.
_MAX_MATERIALISED_ENTRIES = 4096 * 4096
# From this many logits (rows x 2m) on, a batch that needs no chunking takes the chunked head in
# one chunk: where the two cost the same, at 256 rows of 1,000 labels on a CPU (measured).
ONE_CHUNK_ENTRIES = 2**19


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
    through the rows that count in chunks (:mod:`~labelemb.methods.label_embedding_chunked`): at
    most one chunk's logits, probabilities and gradients exist at a time, ``e`` is formed once per
    distinct label of each chunk, and the step returns ``logits=None``. A batch of at least 2^19
    logits that fits in one chunk takes the same head in one chunk. Its chunk-sized buffers are
    kept from step to step (at most about 3.5 x 2^23 float32 entries).

    Parameters: ``heads`` (one ``Linear(in_features, 2m)``: rows ``[:m]`` are o1, ``[m:]`` are
    o2; :meth:`output_layer` gives each as views) and ``embedding`` (or ``codes`` and ``expand``).

    The loss is :func:`label_embedding_loss`, the equation above in code. With ``fast_path``
    (the default) a single-model step computes the same loss with hand-written closed-form
    gradients (:mod:`~labelemb.methods.label_embedding_fast`, pinned to the formula by the tests);
    stacked seeds and ``fast_path=False`` run the formula through autograd.

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
        self.heads = init_heads(in_features, num_classes, init_std)
        if compressed_dim is None:
            self.embedding = nn.Parameter(torch.eye(num_classes))
        else:
            self.codes = nn.Parameter(torch.randn(num_classes, compressed_dim))
            self.expand = nn.Linear(compressed_dim, num_classes)
            if variant != "nlp":  # scaled so that A[y] B has unit-variance entries at the start
                nn.init.normal_(self.expand.weight, std=compressed_dim**-0.5)
                nn.init.zeros_(self.expand.bias)
        # The chunked head's buffers, kept from step to step (not state: never saved).
        self._chunk_workspace = Workspace()
        # Counts the NLP variant's training steps, so its warm-up survives a checkpoint.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    @property
    def kept_buffer_bytes(self) -> int:
        """Bytes of the chunked head's buffers kept from one step to the next (never saved)."""
        return self._chunk_workspace.nbytes

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
        if (
            chunk_rows is None
            and self.chunk_size is None
            and features.shape[0] * 2 * self.num_classes >= ONE_CHUNK_ENTRIES
        ):
            # A batch of a vocabulary's width that fits in one chunk still takes the chunked head
            # (its buffers reused, e formed once per distinct label): faster than the one below.
            chunk_rows = features.shape[0]
        w, b = self.heads.weight, self.heads.bias
        if self.fast_path and features.dim() == 2 and chunk_rows is not None:
            rows, _ = self.check_inputs(features, target)
            embedding = (
                (self.embedding,) if self.compressed_dim is None else (self.codes, *self.expand.parameters())
            )
            loss, stacked_terms = chunked_label_embedding_loss(
                features,
                rows,
                chunk_rows,
                w,
                b,
                embedding,
                w_gold,
                w_soft,
                self.tau,
                self.alpha,
                nlp,
                self._chunk_workspace,
            )
            z1, terms = None, dict(zip(TERMS, stacked_terms.unbind(-1)))
        elif self.fast_path and features.dim() == 2:
            # Autograd through the formula's thirty-odd small operations costs more than the
            # arithmetic at small m: o1 and o2 as one product, and the gradients in closed form.
            rows, z = self.check_inputs(features, target, lambda h: both_heads(h, w, b))
            e = self.embedding_rows(rows.label)
            loss, z1, stacked_terms = LabelEmbeddingHead.apply(
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
        merge_separate_heads(state_dict, prefix)
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
