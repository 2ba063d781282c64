"""Lightning: a callback that gives labelemb methods their epoch-end update under ``lightning.Trainer``
and exact gradient accumulation.

::

    trainer = lightning.Trainer(callbacks=[LabelembCallback()], accumulate_grad_batches=4, ...)
"""

from __future__ import annotations

import math
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:
    raise ImportError(
        'labelemb.integrations.lightning needs Lightning: pip install "labelemb[examples]"'
    ) from error
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..methods import Method
from ..methods.abilities import ReadsDev
from ..methods.base import MicroBatch
from ..methods.batch_shapes import refuse_batch_shape
from .dev_predictions import DevPredictions, hand_dev_predictions, refuse_without_dev

__all__ = ["LabelembCallback", "find_methods"]


def find_methods(module: nn.Module) -> list[Method]:
    """The labelemb methods in ``module`` (itself included), outermost only, each once, in module order.

    A method inside another method is left to the outer one, whose ``on_epoch_end`` is its owner's.
    """
    found: list[Method] = []
    seen: set[int] = set()

    def walk(current: nn.Module) -> None:
        if id(current) in seen:
            return
        seen.add(id(current))
        if isinstance(current, Method):
            found.append(current)
            return
        for child in current.children():
            walk(child)

    walk(module)
    return found


class LabelembCallback(pl.Callback):
    """Calls each labelemb method's ``on_epoch_end()`` at the end of every training epoch, on every rank.

    ``LabelembCallback()`` finds the methods itself: every :class:`~labelemb.methods.Method` among the
    LightningModule's submodules (outermost only), looked up when fitting starts.
    ``LabelembCallback(head, ...)`` updates exactly the methods given, in that order. An epoch cut
    short (``max_steps``, early stopping) ends with its update too: Lightning calls the hook then.

    Under Lightning's DDP strategies each rank accumulates its own share of a method's statistics
    (OLS's per-class sums, LWR's recordings) and ``on_epoch_end`` all-reduces them, as under
    ``torchrun``. For that, the callback tells ``DistributedDataParallel`` to leave the methods'
    buffers alone: by default it would broadcast rank 0's buffers before every forward pass and
    overwrite what the other ranks accumulated. Other buffers (batch norm's) are synchronised as before.

    Gradient accumulation (``accumulate_grad_batches=A``, ``A > 1``): Lightning divides each
    micro-batch's loss by ``A`` and adds the gradients, which averages the micro-batches' means.
    Before each training batch the callback tells each method where the batch lies in its
    optimiser step (:attr:`Method.micro_batch <labelemb.methods.base.Method.micro_batch>`), and
    the method's ``forward`` returns :meth:`~labelemb.methods.base.Method.accumulated_loss`: the
    step's gradient is then that of one batch of its micro-batches, label_embedding's mean over the
    rows ``o2`` gets right and its penalty (a sum over the step's rows) included, its ``nlp``
    warm-up counted in optimiser steps, and an epoch's short last step (fewer than ``A``
    micro-batches) the mean over its own rows. Exact when the micro-batches count the same number
    of rows (padding tokens aside, batches of one size): Lightning does not know the sizes of the
    micro-batches still to come. A method that accumulation cannot make exact (lwal and its
    presets, :attr:`~labelemb.methods.base.Method.accumulation_caveat`) is warned about once. A
    method that shapes its batches (cskd, :attr:`~labelemb.methods.base.Method.batch_shape`) is
    refused in one line when fitting starts: the Trainer's DataLoader builds the batches.

    Checkpoints: a method that is a submodule of the LightningModule keeps all its state (statistics,
    soft labels, epoch and step counters) in parameters and buffers, so in the model's state_dict,
    which Lightning saves and restores exactly. The callback's own state adds the state_dict of each
    method given to it that is not a submodule (restored strictly), and how many epochs have had their
    update. A checkpoint written after an epoch's last batch but before its update (by
    ``ModelCheckpoint(every_n_train_steps=...)`` on the epoch's last step) is resumed by Lightning 2.6
    past the epoch's end without ``on_train_epoch_end``: the callback makes the missing update when
    training starts, so the resumed run goes on as the uninterrupted one would.

    A method that reads the dev split's predictions (adafocal:
    :class:`~labelemb.methods.abilities.ReadsDev`) needs ``dev_predictions``, a function of the
    method that returns the dev split's logits and labels: it is called on every rank at each
    epoch's end, before the update, with the LightningModule in evaluation mode, and every rank
    takes rank 0's (:mod:`labelemb.integrations.dev_predictions`). Without it such a method is
    refused in one line when fitting starts.
    """

    def __init__(self, *methods: Method, dev_predictions: DevPredictions | None = None) -> None:
        for method in methods:
            if not isinstance(method, Method):
                raise TypeError(f"LabelembCallback takes labelemb methods, got {type(method).__name__}")
        self._dev_predictions = dev_predictions
        self._given = list(methods)
        self._methods: list[Method] = list(methods)
        # Epochs (Lightning's count) whose update the methods have had.
        self._epochs_ended = 0
        self._restored_epochs: int | None = None
        self._pending_outside: list[dict[str, Any]] | None = None
        self._module: nn.Module | None = None

    @property
    def methods(self) -> list[Method]:
        """The methods this callback updates (found in the LightningModule once fitting has started)."""
        return list(self._methods)

    def _resolve(self, pl_module: nn.Module) -> None:
        self._module = pl_module
        self._methods = list(self._given) if self._given else find_methods(pl_module)
        if self._pending_outside is not None:
            self._load_outside(self._pending_outside)

    def _outside(self) -> list[Method]:
        """The methods that are not submodules of the LightningModule: the callback saves their state."""
        inside = set() if self._module is None else {id(m) for m in self._module.modules()}
        return [method for method in self._methods if id(method) not in inside]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._resolve(pl_module)
        names = _buffer_names(pl_module, self._methods)
        if names:
            # DDP reads this list when Lightning wraps the module (after setup): the buffers named are
            # broadcast neither then nor before each forward. DDPStrategy(broadcast_buffers=False) would
            # do the same for every buffer, batch norm's too, and torch 2.13 deprecates it.
            ignored = list(getattr(pl_module, "_ddp_params_and_buffers_to_ignore", []))
            ignored += [name for name in names if name not in ignored]
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(pl_module, ignored)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Heads built in configure_model appear only after setup.
        self._resolve(pl_module)
        for method in self._methods:  # the Trainer's DataLoader, not labelemb's loop, builds the batches
            refuse_batch_shape(method, "a Lightning Trainer")
        refuse_without_dev(self._methods, self._dev_predictions, "LabelembCallback")
        model = trainer.strategy.model
        if isinstance(model, DistributedDataParallel) and getattr(model, "broadcast_buffers", True):
            ignored = getattr(model, "parameters_to_ignore", set())
            synced = [name for name in _buffer_names(model.module, self._methods) if name not in ignored]
            if synced:
                raise RuntimeError(
                    f"DistributedDataParallel would broadcast rank 0's method buffers {synced[:3]} before "
                    "every step and lose the other ranks' statistics: build the labelemb head in the "
                    "LightningModule's __init__ (not configure_model), or pass "
                    "strategy=DDPStrategy(broadcast_buffers=False)"
                )

        for method in self._methods:
            method.warn_inexact_accumulation(trainer.accumulate_grad_batches)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        accumulate = trainer.accumulate_grad_batches
        if accumulate <= 1:  # each batch is a step: the methods' own loss is already its gradient
            return
        # Lightning zeroes the gradients at batch_idx % A == 0 and steps after A batches or at the
        # epoch's last batch, whichever comes first.
        position = batch_idx % accumulate
        left = trainer.num_training_batches - (batch_idx - position)
        count = accumulate if not math.isfinite(left) else max(1, min(accumulate, int(left)))
        micro_batch = MicroBatch(position=position, count=count, divisor=accumulate)
        for method in self._methods:
            method.micro_batch = micro_batch

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._end_micro_batch()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._end_micro_batch()  # a method used after a failed fit computes its own loss again

    def _end_micro_batch(self) -> None:
        for method in self._methods:
            method.micro_batch = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored_epochs is not None and trainer.current_epoch == self._restored_epochs + 1:
            # The checkpoint was written after the epoch's last batch but before its update, and
            # Lightning resumes past that epoch's end: make the update the interrupted run would have.
            self._end_epoch()
        self._restored_epochs = None
        self._epochs_ended = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Every rank runs callbacks, so each method's all_reduce inside on_epoch_end meets its peers.
        self._end_epoch()
        self._epochs_ended = trainer.current_epoch + 1

    def _end_epoch(self) -> None:
        for method in self._methods:
            if self._dev_predictions is not None and isinstance(method, ReadsDev):
                hand_dev_predictions(method, self._dev_predictions, self._module)
            method.on_epoch_end()

    def state_dict(self) -> dict[str, Any]:
        return {
            "epochs_ended": self._epochs_ended,
            "outside_methods": [method.state_dict() for method in self._outside()],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored_epochs = int(state_dict["epochs_ended"])
        self._epochs_ended = self._restored_epochs
        outside = list(state_dict.get("outside_methods", []))
        if self._module is None:
            self._pending_outside = outside  # applied once setup has found the methods
        else:
            self._load_outside(outside)

    def _load_outside(self, states: list[dict[str, Any]]) -> None:
        methods = self._outside()
        if len(states) != len(methods):
            raise ValueError(
                f"the checkpoint holds the state of {len(states)} labelemb method(s) kept outside the "
                f"LightningModule, this LabelembCallback has {len(methods)}: give it the same methods"
            )
        for method, state in zip(methods, states):
            method.load_state_dict(state, strict=True)
        self._pending_outside = None


def _buffer_names(module: nn.Module, methods: list[Method]) -> list[str]:
    """The names, in ``module``, of the methods' buffers."""
    wanted = {id(buffer) for method in methods for buffer in method.buffers()}
    return [name for name, buffer in module.named_buffers() if id(buffer) in wanted]
