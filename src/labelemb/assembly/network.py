"""A run's network and how a batch reaches it: the backbone and the method as one module, the
forward chain of a training step every layout shares, and the batch pipeline (augmentation,
precision) a step's inputs go through."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .. import methods
from ..data.augment import Augment


def run_model(model: nn.Module, inputs: Tensor | tuple[Tensor, ...]) -> Tensor:
    """The backbone on a batch's inputs: one tensor (images) or a tuple (a sequence model's
    source and target)."""
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


#: The task's rows (:meth:`~labelemb.tasks.Task.rows`): backbone output and targets -> the method's.
Rows = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def network_step(
    backbone: Callable[[Any], Tensor],
    rows: Rows | None,
    method: nn.Module,
    inputs: Tensor | tuple[Tensor, ...],
    targets: Tensor,
    index: Tensor | None,
) -> methods.MethodOutput:
    """The forward chain of a training step, the one for every layout: a batch's ``inputs``
    through the ``backbone`` pass (one run's model, or stacked seeds' grouped pass), its
    features and ``targets`` made the method's rows (``rows``, the task's; None: unchanged), then
    the ``method``'s loss. ``index`` (the batch's rows of its split) reaches the method only if the
    method asks for it (``needs_index``)."""
    features = backbone(inputs)
    if rows is not None:
        features, targets = rows(features, targets)
    return method(features, targets, index=index if method.needs_index else None)


class Replicas(nn.Module):
    """Copies of one backbone, each drawn on its own, their features side by side: a batch goes
    through every copy and the result is ``(N, copies * d)``, copy ``k``'s in columns
    ``[k d, (k + 1) d)``. What a method that trains several networks together asks for with its
    class's ``backbones`` (co-teaching's two); a head that reads only its own columns sends its
    gradient to its own copy only."""

    def __init__(self, copies: list[nn.Module]) -> None:
        super().__init__()
        widths = {copy.out_features for copy in copies}
        if len(copies) < 2 or len(widths) != 1:
            raise ValueError(f"replicas are two or more copies of one width, got widths {sorted(widths)}")
        self.copies = nn.ModuleList(copies)
        self.out_features = len(copies) * widths.pop()
        self.output_init_std = getattr(copies[0], "output_init_std", None)

    def forward(self, *inputs: Tensor) -> Tensor:
        return torch.cat([copy(*inputs) for copy in self.copies], dim=-1)

    def stacked_forward(self, params: Mapping[str, Tensor], inputs: Any) -> Tensor:
        """``(S, B, copies * d)``: each copy's own grouped pass over seeds (its ``stacked_forward``)
        on its parameters, ``params["copies.k.*"]``, side by side (the batched trainer's hook)."""
        features = []
        for k, copy in enumerate(self.copies):
            if not callable(getattr(copy, "stacked_forward", None)):
                raise TypeError(f"{type(copy).__name__} does not run seeds side by side (no stacked_forward)")
            prefix = f"copies.{k}."
            own = {name[len(prefix) :]: value for name, value in params.items() if name.startswith(prefix)}
            features.append(copy.stacked_forward(own, inputs))
        return torch.cat(features, dim=-1)


class Network(nn.Module):
    """Backbone and method as one module: what an optimiser and DistributedDataParallel wrap.

    ``rows`` turns the backbone's output and the targets into the method's rows (the task's
    :meth:`~labelemb.tasks.Task.rows`; by default they pass unchanged).
    """

    def __init__(self, model: nn.Module, method: methods.Method, rows: Rows | None = None) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.rows = rows

    def forward(
        self, inputs: Tensor | tuple[Tensor, ...], targets: Tensor, index: Tensor | None = None
    ) -> methods.MethodOutput:
        return network_step(partial(run_model, self.model), self.rows, self.method, inputs, targets, index)


@dataclass
class StepOptions:
    """How a batch reaches the network: augmentation and numeric precision."""

    augment: Augment | None = None
    generator: torch.Generator | None = None  # drives the augmentation; checkpointed
    autocast: torch.dtype | None = None  # bf16 or None
    channels_last: bool = False

    def prepare(self, images: Tensor, train: bool) -> Tensor:
        if self.augment is not None:
            images = self.augment(images, self.generator) if train else self.augment(images, train=False)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def precision(self, device: torch.device) -> Any:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)
