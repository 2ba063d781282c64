"""The adapters' door for a method that reads the dev split's predictions at each epoch's end.

labelemb's own trainer computes them from its dev split (:mod:`labelemb.training.dev_predictions`);
a Hugging Face or Lightning ``Trainer`` holds no dev split labelemb could read, so the user hands the
epoch-end callback a function, ``dev_predictions(method) -> (logits, labels)``: the dev split's
logits ``(N, m)`` (``method.logits`` of the backbone's features) and its labels ``(N,)``. The
callback calls it at each epoch's end, before the method's ``on_epoch_end``, with the model in
evaluation mode and without gradient, and hands the method the result (process 0's on every
process of a distributed run). A method that reads them and no function to give them is refused
when training starts. Needs neither transformers nor lightning.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from ..methods.abilities import ReadsDev
from ..methods.base import Method
from ..methods.processes import from_main_process

#: ``dev_predictions(method) -> (logits, labels)``: the dev split's logits ``(N, m)`` from the
#: model's current weights and its labels ``(N,)`` (the method's ``ignore_index`` for rows that do not count).
DevPredictions = Callable[[Method], tuple[Tensor, Tensor]]


def refuse_without_dev(
    methods: Iterable[Method], dev_predictions: DevPredictions | None, callback: str
) -> None:
    """A method that reads the dev split's predictions, and no ``dev_predictions`` to give them: one line."""
    if dev_predictions is not None:
        return
    for method in methods:
        if isinstance(method, ReadsDev):
            raise ValueError(
                f"{method.name or type(method).__name__} reads the dev split's predictions at each epoch's "
                f"end: give {callback} dev_predictions=, a function of the method that returns the dev "
                "split's logits and labels (see labelemb.integrations.dev_predictions)"
            )


def hand_dev_predictions(method: Method, dev_predictions: DevPredictions, model: nn.Module | None) -> None:
    """``method.on_dev_predictions`` of what ``dev_predictions(method)`` returns, computed with
    ``model`` (the method's too) in evaluation mode and without gradient."""
    with _evaluating([model, method]), torch.no_grad():
        logits, labels = dev_predictions(method)
    device = next(itertools.chain(method.parameters(), method.buffers())).device
    # Copies: the broadcast writes in place, and the function's tensors stay the caller's.
    logits = from_main_process(logits.detach().to(device=device, copy=True))
    labels = from_main_process(labels.to(device=device, copy=True))
    with torch.no_grad():
        method.on_dev_predictions(logits, labels)


@contextlib.contextmanager
def _evaluating(modules: Iterable[nn.Module | None]) -> Iterator[None]:
    """Every submodule of ``modules`` in evaluation mode, each back in its own mode after."""
    held = {id(m): m for module in modules if module is not None for m in module.modules()}
    modes = {key: module.training for key, module in held.items()}
    for module in held.values():
        module.training = False
    try:
        yield
    finally:
        for key, module in held.items():
            module.training = modes[key]
