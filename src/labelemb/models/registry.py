"""Backbone names: each class registers itself where it is defined, with the inputs it reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..registry import Registry, check_options, keyword_options
from .features import FeatureHead

M = TypeVar("M", bound=type[nn.Module])

#: Every backbone; an entry's ``info["inputs"]`` is the kind of data it reads (what a data set yields).
MODELS: Registry[type[nn.Module]] = Registry("model")
#: Constructor parameters a backbone gets from the data, not from its config options.
INPUT_PARAMETERS = ("self", "input_shape", "source_vocabulary", "target_vocabulary")


def register(name: str, *, inputs: str) -> Callable[[M], M]:
    """Class decorator: make the backbone buildable as ``build_model(name, ...)``; ``inputs`` names
    the kind of data it reads (``images``: ``(N, C, H, W)``; ``token_pairs``: source and target ids)."""
    return MODELS.register(name, inputs=inputs)


def available() -> list[str]:
    """Names of the built-in backbones."""
    return MODELS.names()


def model_class(name: str) -> type[nn.Module]:
    """The backbone class named ``name``."""
    return MODELS.get(name)


def model_inputs(name: str) -> str:
    """The kind of data backbone ``name`` reads: ``images`` or ``token_pairs``."""
    return MODELS.entry(name).info["inputs"]


def model_options(name: str) -> dict[str, object]:
    """The options backbone ``name`` takes from a config, with their defaults."""
    return keyword_options(model_class(name).__init__, skip=INPUT_PARAMETERS)


def model_text_encoder(name: str, options: dict[str, object]) -> str | None:
    """The folder of the Hugging Face tokenizer whose token ids backbone ``name`` reads (a pretrained
    text encoder, with its ``options``), or None: it reads the data set's own word ids.

    A backbone class that reads a pretrained tokenizer's ids says so with a classmethod
    ``tokenizer_folder(**options) -> str``; the text data is then encoded with that tokenizer.
    """
    tokenizer_folder = getattr(model_class(name), "tokenizer_folder", None)
    if tokenizer_folder is None:
        return None
    accepted = keyword_options(tokenizer_folder)
    return str(tokenizer_folder(**{key: value for key, value in options.items() if key in accepted}))


def build_model(name: str, input_shape: tuple[int, ...], **options: object) -> nn.Module:
    """Build backbone ``name`` for inputs of shape ``input_shape``: (C, H, W) for an image backbone,
    (source vocabulary size, target vocabulary size) for a sequence model."""
    cls = model_class(name)
    check_options(f"model {name!r}", model_options(name), options)
    if "input_shape" in keyword_options(cls.__init__):
        return cls(tuple(input_shape), **options)
    return cls(*input_shape, **options)


def feature_head(
    name: str, input_shape: tuple[int, ...], dense: int | None, options: dict[str, object]
) -> nn.Module:
    """What trains on frozen backbone ``name``'s cached features of shape ``input_shape``: the
    backbone's own ``feature_head`` (its ``options`` over its defaults) where it has one (a
    representation whose head is more than a dense layer), else :class:`FeatureHead`."""
    own = getattr(model_class(name), "feature_head", None)
    if own is None:
        return FeatureHead(input_shape, dense=dense)
    return own(tuple(input_shape), dense, **{**model_options(name), **options})
