"""The Label Confusion Model (Guo et al. 2021): a label encoder turns the example's similarity to
each label into a confusion distribution that softens the one-hot target."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..search_spaces import Space
from ..stacking import linear
from .abilities import Stackable
from .base import LinearOutputMethod, MethodOutput, Rows
from .registry import register
from .rows import one_hot


@register("lcm")
class LabelConfusionModel(Stackable, LinearOutputMethod):
    """Label Confusion Model, Guo, Han, Han, Huang and Lu (2021), "Label Confusion Learning to
    Enhance Text Classification Models" (AAAI; arXiv 2012.04987), its model as the paper's LCM
    figure and the authors' Keras code (beyondguo/label_confusion_learning, ``models/lstm.py``)
    give it (the paper's text beyond its introduction was not at hand).

    Beside the predicting layer ``z = W h + b``, a label encoder: label embeddings ``E``
    (m x ``embedding_dim``) and a dense layer give the label vectors ``V = tanh(E A^T + a)``
    (m x d); an example's similarity to each label, ``V h``, goes through a dense m -> m layer and
    a softmax into the label confusion distribution (LCD); the simulated label distribution (SLD)
    softens the one-hot label with it, and the loss is the KL from the SLD to the prediction::

        c   = softmax(W_c (V h) + b_c)                  (the LCD)
        s   = softmax(alpha * onehot(y) + c)            (the SLD)
        L   = KL(s || softmax(z)) = sum_k s_k (log s_k - log p_k)

    Nothing is detached, as in the authors' Keras code (``lcm_loss``: ``-H(s, s) + H(s, p)`` on the
    concatenated outputs): the KL trains the predictor, the label encoder (``E``, ``A``, ``a``,
    ``W_c``, ``b_c``) and, through both paths, the features. ``alpha = 4`` as in their LSTM
    script (their BERT script tries 3, 4 and 5); ``embedding_dim = 64`` their LSTM setting (their BERT runs
    used 256). ``E`` starts as Keras' embeddings do, uniform in [-0.05, 0.05]; both dense layers
    Glorot-uniform with zero biases; prediction uses ``z`` alone.

    Departures: the example's representation is ``h``, the features this method is given (theirs
    was the text encoder's output, the same layer their classifier reads: the LSTM's last state,
    or ``tanh(Dense(BERT [CLS]))``). Their Keras cross-entropies clip probabilities to
    ``[1e-7, 1 - 1e-7]``; here the KL is exact (``log_softmax``). Their LSTM script also stops the
    LCM after 30 of 40 epochs and trains on label smoothing from then (``LSTM_LCM_dynamic``,
    ``lcm_stop``); not implemented: the LCM acts throughout.

    The label representation is ``V`` (m x d, the label encoder's vectors). Serves class rows only.
    """

    # linear (grouped for stacked weights), matmul and softmax broadcast over a leading seed
    # dimension: tested against per-seed runs.
    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its confusion layer is a dense m x m layer over the label similarities: V x V over "
        "a vocabulary (10 GB at 50,000 words)",
        "tags": (
            "its simulated label distribution softens one gold label with a softmax over the classes, "
            "softmax(alpha onehot(y) + c); a tag set has several labels and no one distribution to "
            "soften"
        ),
    }
    # alpha, the one-hot's weight inside the SLD's softmax (constructor: > 0): the gold class's mass
    # is e^alpha against at most e for each other class, so with 10 classes 2 leaves it about half
    # the target and 8 makes the target one-hot to 0.3 %; 4 (the authors') inside.
    search_space: ClassVar[dict[str, Space]] = {"alpha": Space.floats(2.0, 8.0)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        alpha: float = 4.0,
        embedding_dim: int = 64,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if alpha <= 0.0:
            raise ValueError(f"alpha (the one-hot's weight in the simulated label) must be > 0, got {alpha}")
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive whole number, got {embedding_dim}")
        self.alpha = alpha
        self.embedding_dim = embedding_dim
        self.label_embedding = nn.Parameter(torch.empty(num_classes, embedding_dim).uniform_(-0.05, 0.05))
        self.label_encoder = nn.Linear(embedding_dim, in_features)
        self.confusion = nn.Linear(num_classes, num_classes)
        for layer in (self.label_encoder, self.confusion):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def label_vectors(self) -> Tensor:
        """``V = tanh(E A^T + a)``: ``(m, d)``, or ``(S, m, d)`` for stacked seeds."""
        return torch.tanh(linear(self.label_embedding, self.label_encoder.weight, self.label_encoder.bias))

    def head_outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, W_c (V h) + b_c)``: the prediction's logits and the LCD's (both checked for finite rows)."""
        similarity = torch.matmul(features, self.label_vectors().transpose(-1, -2))  # (..., N, m)
        return self.logits(features), linear(similarity, self.confusion.weight, self.confusion.bias)

    def compute_loss(
        self, outputs: tuple[Tensor, Tensor], rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        logits, confusion_logits = outputs
        log_p = F.log_softmax(logits, dim=-1)
        confusion = torch.softmax(confusion_logits, dim=-1)  # the LCD
        onehot = one_hot(rows.label, self.num_classes).to(confusion.dtype)
        log_s = F.log_softmax(self.alpha * onehot + confusion, dim=-1)  # the SLD, in logs
        kl = rows.mean((log_s.exp() * (log_s - log_p)).sum(-1))
        return MethodOutput(kl, logits, {"kl": kl})

    @torch.no_grad()
    def label_representation(self) -> Tensor:
        """The label encoder's vectors ``V`` (m x d)."""
        return self.label_vectors().detach().clone()
