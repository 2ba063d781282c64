"""The Label Embedding Network (Sun et al. 2017): soft labels learned during training."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...search_spaces import Space
from ...stacking import linear, rows_of
from ..abilities import Chunked, Stackable
from ..base import Method, MethodOutput, Rows
from ..chunked import rows_per_chunk
from ..host_count import HostCount
from ..processes import per_process_share, world_size
from ..registry import register
from .chunked import Workspace, chunked_label_embedding_loss
from .fast import LabelEmbeddingHead, both_heads
from .heads import init_heads, merge_separate_heads
from .loss import TERMS, Normalisation, label_embedding_loss, warmup_updates
from .tag_method import TagEmbedding

VARIANTS = ("released", "nlp", "paper")

#: Name under which a run saves the raw ``E`` (:meth:`LabelEmbedding.artifacts`), which
#: :class:`~labelemb.methods.label_embedding.fixed.LabelEmbeddingFixed` reads.
EMBEDDING_KEY = "embedding"

# Above this many entries, label_representation() of a compressed embedding returns the
# (m, k) label codes instead of materialising the m x m soft-label matrix.
_MAX_MATERIALISED_ENTRIES = 4096 * 4096
# From this many logits (rows x 2m) on, a batch that needs no chunking takes the chunked head in
# one chunk: where the two cost the same, at 256 rows of 1,000 labels on a CPU (measured).
ONE_CHUNK_ENTRIES = 2**19


@register("label_embedding")
class LabelEmbedding(Stackable, Chunked, TagEmbedding, Method):
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
    through the rows that count in chunks (:mod:`~labelemb.methods.label_embedding.chunked`): at
    most one chunk's logits, probabilities and gradients exist at a time, ``e`` is formed once per
    distinct label of each chunk, and the step returns ``logits=None``. A batch of at least 2^19
    logits that fits in one chunk takes the same head in one chunk. Its chunk-sized buffers are
    kept from step to step (at most about 3.5 x 2^23 float32 entries).

    Parameters: ``heads`` (one ``Linear(in_features, 2m)``: rows ``[:m]`` are o1, ``[m:]`` are
    o2; :meth:`output_layer` gives each as views) and ``embedding`` (or ``codes`` and ``expand``).

    The loss is :func:`~labelemb.methods.label_embedding.loss.label_embedding_loss`, the
    equation above in code. With ``fast_path`` (the default) a single-model step computes the
    same loss with hand-written closed-form gradients (:mod:`~labelemb.methods.label_embedding.fast`,
    pinned to the formula by the tests); ``fast_path="fused"`` runs those closed forms through
    ``torch.compile`` (a few fused kernels instead of some forty small ones); stacked seeds and
    ``fast_path=False`` run the formula through autograd. On tag sets (the run passes ``tag_sets``)
    ``fast_path`` takes the tag loss's closed forms (:mod:`~labelemb.methods.label_embedding.tag_fast`).

    Rows with non-finite features or logits (``z1``, ``z2``) are left out of every term and of
    every gradient that reaches ``E`` (or ``A``, ``B``, ``c`` when compressed), ``o1`` and
    ``o2``, as ignored rows are, so a bad batch cannot make them non-finite; the loss then is NaN
    and those rows' features get a NaN gradient, so the loop (or an AMP ``GradScaler``) sees the
    bad step (see :class:`~labelemb.methods.base.Method`). An empty batch does not count towards
    the ``nlp`` warm-up.
    """

    # tau softens o2's output into E's target (> 0): 2 (the paper's and the release's) inside; 1 takes
    # o2's output as it is, below it would sharpen the soft label the method is for, and at 8 the
    # target is close to uniform for o2's usual logits. Log: a temperature acts by its ratio.
    # alpha caps o2's gold probability (the hinge max(0, p2[y] - alpha); variant nlp: |p2[y] - alpha|
    # holds it there): 0.9 (the release's) inside; at 1 the hinge never acts, below 0.5 o2 is kept
    # under an even chance at the gold class, and the mask that lets E learn (argmax z2 = y) fails.
    search_space: ClassVar[dict[str, Space]] = {
        "tau": Space.floats(1.0, 8.0, log=True),
        "alpha": Space.floats(0.5, 0.99),
    }
    # soft_warmup acts in variant nlp only (released and paper ignore it): searched there alone, as a
    # fraction of training's updates (the trainer passes total_updates; 0.0 reads as 0 updates, the
    # soft term from the start). Our configs' 0.4 inside; past 0.6 o1 learns from E for under half
    # the run. The release's 20,000 updates is a count for its own corpora, a fraction elsewhere.
    search_space_when: ClassVar[dict[tuple[str, object], dict[str, Space]]] = {
        ("variant", "nlp"): {"soft_warmup": Space.floats(0.0, 0.6)},
    }

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
        fast_path: bool | Literal["fused"] = True,
        tag_sets: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if variant not in VARIANTS:
            raise ValueError(f"unknown label_embedding variant {variant!r}; choose one of {VARIANTS}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if fast_path not in (True, False, "fused"):
            raise ValueError(f"fast_path is true, false or 'fused', got {fast_path!r}")
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
        self.trained_on_tags = tag_sets  # its representation: the tag rows (a tag step also sets it)
        self.soft_warmup = warmup_updates(variant, soft_warmup, total_updates)

        # o1 and o2 live in one layer: rows [:m] are o1, rows [m:] are o2. One matrix product
        # serves both, and the optimiser updates two tensors instead of four.
        self.heads = init_heads(in_features, num_classes, self.init_std)
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
        # Rows o2 got right so far in this optimiser step, over its micro-batches (micro_batch_loss).
        self._accumulated_masks: Tensor | None = None
        # Variant nlp under gradient accumulation: the count of updates that this optimiser step's
        # micro-batches read (None until one of its micro-batches has a row that counts), and
        # whether a micro-batch is being computed (its forward then counts no update of its own).
        self._step_updates: int | None = None
        self._in_micro_batch = False
        # Counts the NLP variant's training steps, so its warm-up survives a checkpoint.
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))
        self._updates = HostCount()  # num_updates on the host: a step reads no device value

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
        if self.variant == "nlp":  # every weight 1, the soft term after the warm-up (as released)
            if self._in_micro_batch and self._step_updates is not None:
                updates = self._step_updates  # the optimiser step's, whichever of its micro-batches
            else:
                # Stacked seeds count their updates together: the first seed's count is every seed's.
                updates = self._updates.read(self.num_updates)
            return 1.0, float(updates >= self.soft_warmup)
        return self.beta, 1.0 - self.beta

    def chunking(self, features: Tensor) -> int | None:
        if not self._fast(features):
            return None
        rows, width = features.shape[0], 2 * self.num_classes
        chunk_rows = rows_per_chunk(self.chunk_size, rows, width)
        if chunk_rows is None and self.chunk_size is None and rows * width >= ONE_CHUNK_ENTRIES:
            # A batch of a vocabulary's width that fits in one chunk still takes the chunked head
            # (its buffers reused, e formed once per distinct label): faster than the batch at once.
            return rows
        return chunk_rows

    def chunked_loss(self, features: Tensor, rows: Rows, chunk_rows: int) -> MethodOutput:
        """The fast path chunk by chunk of rows (:mod:`~labelemb.methods.label_embedding.chunked`)."""
        loss, stacked_terms = chunked_label_embedding_loss(
            features,
            rows,
            chunk_rows,
            self.heads.weight,
            self.heads.bias,
            self.embedding_parameters(),
            *self.loss_weights(),
            self.tau,
            self.alpha,
            self.variant == "nlp",
            self._chunk_workspace,
        )
        self._count_update(rows)
        return MethodOutput(loss, None, dict(zip(TERMS, stacked_terms.unbind(-1))))

    def head_outputs(self, features: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``[z1, z2]`` as one ``(N, 2m)`` product outside autograd on the fast path; else ``(z1, z2)``."""
        if self._fast(features):
            return both_heads(features, self.heads.weight, self.heads.bias)
        return self._both_outputs(features)

    def compute_loss(self, z: Any, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        w_gold, w_soft = self.loss_weights()
        nlp = self.variant == "nlp"
        e = self.embedding_rows(rows.label)
        if self._fast(features):
            # Autograd through the formula's thirty-odd small operations costs more than the
            # arithmetic at small m: o1 and o2 as one product, and the gradients in closed form.
            w, b = self.heads.weight, self.heads.bias
            loss, z1, stacked_terms = LabelEmbeddingHead.apply(
                *(rows.safe(features), w, b, z, e, rows, w_gold, w_soft, self.tau, self.alpha, nlp),
                self.fast_path == "fused",
            )
            terms = dict(zip(TERMS, stacked_terms.unbind(-1)))
        else:
            z1, z2 = z
            loss, terms = label_embedding_loss(
                z1, z2, e, rows, w_gold=w_gold, w_soft=w_soft, tau=self.tau, alpha=self.alpha, nlp=nlp
            )
        self._count_update(rows)
        return MethodOutput(loss, z1, terms)

    def embedding_parameters(self) -> tuple[nn.Parameter, ...]:
        """``E``, or ``A``, ``B`` and ``c`` when compressed: what learns from the ``emb`` term alone."""
        return (self.embedding,) if self.compressed_dim is None else (self.codes, *self.expand.parameters())

    def micro_batch_loss(
        self,
        features: Tensor,
        target: Tensor,
        num_items: Tensor | float,
        *,
        index: Tensor | None = None,
        step_start: bool | None = None,
    ) -> MethodOutput:
        """One micro-batch of gradient accumulation, exact for every term (see the base method).

        Besides the per-row terms (each over ``num_items``), ``E`` learns from the step's rows
        ``o2`` gets right, averaged over their count ``C`` over every micro-batch (and process),
        and the penalty is a sum over the step's rows. ``C`` is known only once the last
        micro-batch has run: micro-batch ``k`` divides its own sum by the count so far ``C_k``
        and first rescales the gradient ``E`` already holds from this step by
        ``(C_{k-1} + 1e-8) / (C_k + 1e-8)``, so that after the last one ``E``'s gradient is
        ``sum_i mask_i grad H_i / (C + 1e-8)``, as for the whole batch at once. A step starts
        where ``step_start`` says, or else where the method's parameters hold no gradient (the
        optimiser's ``zero_grad``, :meth:`~labelemb.methods.base.Method.starts_step`). Variant
        ``nlp`` averages every term over rows already; its warm-up counts optimiser steps, not
        micro-batches: a step counts once, at its first micro-batch with a row that counts.
        """
        if not (self.training and torch.is_grad_enabled()):
            return super().micro_batch_loss(features, target, num_items, index=index)
        starts = self.starts_step(step_start)
        if self.variant == "nlp":
            return self._nlp_micro_batch(features, target, num_items, index, starts)
        rows, (z1, z2) = self.check_inputs(features, target, self._both_outputs)
        correct = (z2.argmax(-1) == rows.label).to(z2.dtype)
        if rows.weight is not None:
            correct = correct * rows.weight
        masks = per_process_share(correct.sum().detach()) * world_size()  # the step's, all processes'
        started = not starts and self._accumulated_masks is not None
        before = self._accumulated_masks if started else torch.zeros_like(masks)
        so_far = before + masks
        if started:
            with torch.no_grad():
                for parameter in self.embedding_parameters():
                    if parameter.grad is not None:
                        parameter.grad.mul_((before + 1e-8) / (so_far + 1e-8))
        self._accumulated_masks = so_far
        w_gold, w_soft = self.loss_weights()
        e = self.embedding_rows(rows.label)
        # emb over the step's mask count so far; the penalty the step's sum on this process: the
        # Trainer multiplies a loss given num_items_in_batch by the number of processes, whose
        # gradients data parallel training then averages.
        step = Normalisation(two_sided=False, emb=so_far + 1e-8, penalty_divisor=1.0, penalty_factor=1)
        _, terms = label_embedding_loss(
            *(z1, z2, e, rows),
            w_gold=w_gold,
            w_soft=w_soft,
            tau=self.tau,
            alpha=self.alpha,
            nlp=False,
            normalised=step,
        )
        counted = per_process_share((target != self.ignore_index).sum().to(z1.dtype))
        per_row = w_gold * terms["ce_o1"] + w_soft * terms["soft_o1"] + terms["ce_o2"]
        loss = per_row * counted / num_items + terms["emb"] + terms["penalty"]
        return rows.output(loss, z1, {name: value.detach() for name, value in terms.items()})

    def _nlp_micro_batch(
        self, features: Tensor, target: Tensor, num_items: Tensor | float, index: Tensor | None, starts: bool
    ) -> MethodOutput:
        """Variant nlp's micro-batch: the base's, with the warm-up read and counted once per step."""
        if starts:
            self._step_updates = None
        # An all-padding micro-batch adds nothing, and leaves the gradients at zero: the next one
        # may look like a step's start too, so only a micro-batch whose rows count counts the step.
        if self._step_updates is None and bool((target != self.ignore_index).any()):
            self._step_updates = self._updates.read(self.num_updates)
            self._updates.add_one(self.num_updates)
        self._in_micro_batch = True
        try:
            return super().micro_batch_loss(features, target, num_items, index=index)
        finally:
            self._in_micro_batch = False

    def _fast(self, features: Tensor) -> bool:
        """Whether this batch takes the fast path: ``fast_path``, and one model's features."""
        return self.fast_path and features.dim() == 2

    def _count_update(self, rows: Rows) -> None:
        """Count a training step of the ``nlp`` variant, for its warm-up (an empty batch is no update)."""
        if self.training and self.variant == "nlp" and rows.label.shape[-1] and not self._in_micro_batch:
            self._updates.add_one(self.num_updates)

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
        """Softmax rows of ``E`` (m x m); for a large compressed embedding, the codes ``A`` (m x k);
        trained on tag sets, each tag's row of probabilities (:meth:`tag_representation`)."""
        if self.trained_on_tags:
            return self.tag_representation()
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
