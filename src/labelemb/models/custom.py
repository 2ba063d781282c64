"""Your own backbone: ``model.name: custom`` builds the ``nn.Module`` a function of yours returns.

``model.factory`` names the function as ``package.module:function`` (the entry-point form; the
part after the colon may be a dotted path inside the module, ``module:Class.build``), and
``model.options`` holds its keyword arguments::

    model:
      name: custom
      factory: mynets.vision:small_cnn
      options: {width: 64}

The module it returns maps a batch of images ``(N, C, H, W)`` in [0, 1] to features ``(N, d)``;
``d`` is read from a dry run on a batch of zeros, and the method's output layer follows. Its
``output_init_std`` is used for that layer if the module has one (PyTorch's default if not).
Every way this can go wrong (a factory that cannot be imported, that raises, that returns
something other than a module, or whose output is not ``(N, d)``) is a one-line ValueError that
names the factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .registry import register

#: Rows of the dry run: more than one, so that an output that lost the batch dimension shows.
DRY_RUN_ROWS = 2


def _describe(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _module_is_missing(error: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``error`` says ``module_name`` itself (or a package above it) is not there, rather
    than something that module imports."""
    missing = error.name or ""
    return module_name == missing or module_name.startswith(missing + ".")


def import_factory(spec: str) -> Callable[..., Any]:
    """The callable that ``spec`` (``package.module:function``) names."""
    module_name, colon, attribute_path = spec.partition(":")
    if not colon or not module_name or not attribute_path:
        raise ValueError(
            f"model.factory {spec!r} is not of the form 'package.module:function' "
            "(the module to import, a colon, the function in it)"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if _module_is_missing(error, module_name):
            raise ValueError(
                f"model.factory {spec!r}: there is no module {module_name!r} to import "
                f"({_describe(error)}); keep it beside the config file or put its folder on the Python path "
                "(PYTHONPATH=/path/to/folder)"
            ) from error
        raise ValueError(
            f"model.factory {spec!r}: importing {module_name!r} failed: {_describe(error)}"
        ) from error
    except Exception as error:  # whatever the user's module raises while it is imported
        raise ValueError(
            f"model.factory {spec!r}: importing {module_name!r} failed: {_describe(error)}"
        ) from error
    factory: Any = module
    for attribute in attribute_path.split("."):
        if not hasattr(factory, attribute):
            raise ValueError(f"model.factory {spec!r}: module {module_name!r} has no {attribute_path!r}")
        factory = getattr(factory, attribute)
    if not callable(factory):
        raise ValueError(f"model.factory {spec!r} names a {type(factory).__name__}, not a function to call")
    return factory


def call_factory(spec: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> nn.Module:
    """``factory(**options)``, checked to be an ``nn.Module``."""
    try:
        built = factory(**options)
    except Exception as error:  # the user's code: report it against the factory that raised
        raise ValueError(f"model.factory {spec!r} raised {_describe(error)}") from error
    if not isinstance(built, nn.Module):
        raise ValueError(
            f"model.factory {spec!r} returned a {type(built).__name__}, not a torch.nn.Module; "
            "return the network (an nn.Module that maps images (N, C, H, W) to features (N, d))"
        )
    return built


def feature_width(spec: str, network: nn.Module, input_shape: tuple[int, ...]) -> int:
    """``d`` of the network's ``(N, d)`` output on a batch of zeros of ``input_shape`` (in eval
    mode, without gradients; the network's mode is restored)."""
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    zeros = torch.zeros(DRY_RUN_ROWS, *input_shape, device=device)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            output = network(zeros)
    except Exception as error:  # the user's forward
        raise ValueError(
            f"model.factory {spec!r}: its network failed on a batch of shape {tuple(zeros.shape)}: "
            f"{_describe(error)}"
        ) from error
    finally:
        network.train(was_training)
    if not isinstance(output, Tensor):
        raise ValueError(
            f"model.factory {spec!r}: its network returned a {type(output).__name__} for a batch of "
            f"shape {tuple(zeros.shape)}, not a tensor; return the features (N, d) alone"
        )
    if output.dim() != 2 or output.shape[0] != DRY_RUN_ROWS:
        raise ValueError(
            f"model.factory {spec!r}: its network returned shape {tuple(output.shape)} for a batch of "
            f"shape {tuple(zeros.shape)}, not features (N, d) = ({DRY_RUN_ROWS}, d); end it with a "
            "global pooling (nn.AdaptiveAvgPool2d(1)) and nn.Flatten(), or a flatten alone"
        )
    return int(output.shape[1])


@register("custom", inputs="images")
class CustomBackbone(nn.Module):
    """A backbone of your own: the ``nn.Module`` that ``factory`` (``package.module:function``)
    returns when called with ``options``, checked by a dry run to map images to ``(N, d)``
    features. The harness's way of training any model without a fork (see the module docstring).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        factory: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not factory:
            raise ValueError(
                "model custom needs model.factory: the function that builds your network, as "
                "'package.module:function'"
            )
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(
                f"model.factory {factory!r}: model.options must be a mapping of keyword arguments, "
                f"got {type(options).__name__}"
            )
        self.factory = factory
        self.network = call_factory(factory, import_factory(factory), dict(options or {}))
        self.out_features = feature_width(factory, self.network, tuple(input_shape))
        self.output_init_std = getattr(self.network, "output_init_std", None)

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images)
