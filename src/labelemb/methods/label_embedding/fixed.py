"""A pre-trained label embedding, loaded and frozen (Sun et al. 2017, Appendix C)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ...rundir import TENSORS_FILE, RunDir
from ...search_spaces import Space
from ...stacking import linear, rows_of
from ..abilities import Stackable
from ..base import Method, MethodOutput, Rows, gold
from ..registry import register
from ..tensor_files import read_tensor_file
from .method import EMBEDDING_KEY


def load_embedding(source: str | Path | Tensor) -> Tensor:
    """Read a raw m x m label embedding ``E`` from a run folder, a tensor file, or a tensor.

    A run folder of a label_embedding run holds it under the key ``embedding``; a
    ``.safetensors`` file must hold that key (or exactly one tensor); a ``.pt`` file holds a tensor.
    """
    if isinstance(source, Tensor):
        return source.detach().float()
    path = Path(source)
    if path.is_dir():
        tensors = RunDir(path).read_tensors()
        if EMBEDDING_KEY not in tensors:
            raise FileNotFoundError(
                f"no label embedding in the run folder {path}: its {TENSORS_FILE} lacks "
                f"{EMBEDDING_KEY!r}. Pass the folder of a finished label_embedding run, or a "
                ".safetensors/.pt file with an m x m tensor"
            )
        return tensors[EMBEDDING_KEY].float()
    if not path.exists():
        raise FileNotFoundError(
            f"no label embedding at {path}: pass a run folder of a label_embedding run "
            "or a .safetensors/.pt file with an m x m tensor"
        )
    return read_tensor_file(path, EMBEDDING_KEY)


@register("label_embedding_fixed")
class LabelEmbeddingFixed(Stackable, Method):
    """Pre-trained Label Embedding Network, Sun et al. (2017), Appendix C, Eq. 17.

    ``E`` is loaded and frozen (a buffer, never a parameter) and ``o2`` is removed::

        L = beta H(y, softmax(z1)) + (1 - beta) H(softmax(E[y]), softmax(z1))

    ``embedding`` is a run folder of a ``label_embedding`` run, a tensor file, or a tensor.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it needs a full m x m embedding from a finished run (V x V over a "
        "vocabulary); the nlp variant learns a compressed one",
        "tags": "its fixed embedding is a finished run's softmax rows over one label a row; on tag "
        "sets label_embedding learns each tag's row of sigmoids",
    }
    # beta, the gold label's weight against E's soft label (constructor: [0, 1]): all of it, since
    # both ends are meaningful: 1 is onehot, 0 learns from E's soft labels alone; 0.5 (ours) inside.
    search_space: ClassVar[dict[str, Space]] = {"beta": Space.floats(0.0, 1.0)}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        embedding: str | Path | Tensor,
        beta: float = 0.5,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        matrix = load_embedding(embedding)
        if matrix.shape != (num_classes, num_classes):
            raise ValueError(
                f"the label embedding has shape {tuple(matrix.shape)} but this task has "
                f"{num_classes} classes: it must be ({num_classes}, {num_classes}); "
                "was it learned on a different dataset?"
            )
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        self.beta = beta
        self.o1 = self.linear_head(num_classes)
        self.register_buffer("soft_label_table", torch.softmax(matrix, dim=-1))

    def compute_loss(self, z1: Tensor, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        log_p1 = F.log_softmax(z1, dim=-1)
        soft_label = rows_of(self.soft_label_table, rows.label)
        ce_o1 = rows.mean(-gold(log_p1, rows.label))
        soft_o1 = rows.mean(-(soft_label * log_p1).sum(-1))
        loss = self.beta * ce_o1 + (1.0 - self.beta) * soft_o1
        return MethodOutput(loss, z1, {"ce_o1": ce_o1, "soft_o1": soft_o1})

    def logits(self, features: Tensor) -> Tensor:
        return linear(features, self.o1.weight, self.o1.bias)

    def label_representation(self) -> Tensor:
        return self.soft_label_table.clone()
