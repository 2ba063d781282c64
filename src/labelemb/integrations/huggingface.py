"""Any labelemb method in a Hugging Face ``Trainer`` (transformers >= 4.46): ``compute_loss_func``.

How the model, the loss and the optimiser fit together::

    class Model(PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.backbone = ...
            self.head = labelemb.methods.build("ols", in_features=config.hidden_size, num_classes=10)

        def forward(self, input_ids, attention_mask=None, index=None):
            h = self.backbone(input_ids, attention_mask).last_hidden_state  # (N, T, d), or (N, d)
            return LabelembOutput(logits=self.head.logits(h), features=h, index=index)

    trainer = Trainer(
        model=model,
        args=TrainingArguments(..., label_names=["labels"]),
        compute_loss_func=LabelembLoss(model.head),
        callbacks=[EpochEndCallback(model.head)],
    )

- The method is a submodule of the model: the Trainer's optimiser, built from the model's
  parameters, trains the method's own (label_embedding's ``E``, ``o1``, ``o2``), and the model's
  device moves, checkpoints and ``save_pretrained`` carry its parameters and buffers.
  :class:`EpochEndCallback` refuses, at the start of training, a method the optimiser does not hold.
- A method that shapes its batches (cskd's same-class pairs,
  :attr:`~labelemb.methods.base.Method.batch_shape`) is refused in one line by :class:`LabelembLoss`
  and at the start of training: the Trainer's data loader builds the batches, not labelemb's loop.
- The model returns the backbone's features (:class:`LabelembOutput`); :class:`LabelembLoss`
  applies the method to them and the labels. Its ``logits`` are ``method.logits(features)``, the
  scores the method trains: what evaluation and ``predict`` return. A model may skip them in
  training (``None if self.training else ...``), where the Trainer reads only the loss.
- ``label_names=["labels"]``: a forward without a ``labels`` argument would hide the column from
  the Trainer (it drops a data set's columns the forward does not take, and evaluates without
  labels). ``keys_to_ignore_at_inference = ["features", "index"]`` on the config class keeps the
  features out of the predictions.
- A method that needs each example's dataset position (``lwr``): the data set carries an
  ``index`` column, the forward takes ``index`` and returns it in :class:`LabelembOutput`.

Gradient accumulation: the Trainer counts the labels that are not -100 over every micro-batch of
an optimiser step (and, with ``average_tokens_across_devices``, over every process), passes the
count as ``num_items_in_batch`` to ``compute_loss_func`` and, unlike a loss the model returns
without it, does not divide that loss by ``gradient_accumulation_steps``. :class:`LabelembLoss`
returns :meth:`Method.micro_batch_loss <labelemb.methods.base.Method.micro_batch_loss>`: the sum
of the rows' losses over ``num_items_in_batch``, so the micro-batches' gradients add up to those of
the whole batch's mean however its rows fall into micro-batches (padding, a short last batch).
label_embedding's ``released`` and ``paper`` variants learn ``E`` from the rows ``o2`` gets right,
averaged over the step's count of them, which is known only after the last micro-batch: each
micro-batch divides by the count so far and rescales the gradient ``E`` already holds, so the
step's gradient is the whole batch's; their penalty, a sum over rows, is summed over the step.
A step starts where the method's parameters hold no gradient: the Trainer's ``zero_grad`` after
every step. The ``nlp`` variant's ``soft_warmup`` counts optimiser steps, not micro-batches. Only
lwal and its presets (``lwal10``, ``lwal10_rpl``) stay a micro-batch's: their label vectors are each
micro-batch's class means, the repel term pairs a micro-batch's rows and their step count counts
micro-batches; :class:`EpochEndCallback` warns of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..methods.abilities import ReadsDev
from ..methods.base import Method, MethodOutput
from ..methods.batch_shapes import refuse_batch_shape
from .dev_predictions import DevPredictions, hand_dev_predictions, refuse_without_dev

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.utils import ModelOutput
except ImportError as error:  # the extra is optional: say which one brings it
    raise ImportError(
        'labelemb.integrations.huggingface needs transformers: pip install "labelemb[examples]"'
    ) from error

__all__ = ["EpochEndCallback", "LabelembLoss", "LabelembOutput", "method_loss"]

#: The label the Trainer leaves out of ``num_items_in_batch`` (it counts ``labels.ne(-100)``).
TRAINER_IGNORE_INDEX = -100


@dataclass
class LabelembOutput(ModelOutput):
    """What a model trained through :class:`LabelembLoss` returns.

    ``logits = method.logits(features)`` (what predictions use; None to skip them), ``features``
    the backbone's output ``h``, ``(N, d)`` or ``(N, T, d)`` lined up with ``(N,)`` or ``(N, T)``
    labels, and ``index`` the examples' dataset positions ``(N,)``, for a method that
    :attr:`~labelemb.methods.base.Method.needs_index`.
    """

    logits: Tensor | None = None
    features: Tensor | None = None
    index: Tensor | None = None


def method_loss(
    method: Method,
    features: Tensor,
    labels: Tensor,
    num_items_in_batch: Tensor | int | None = None,
    *,
    index: Tensor | None = None,
) -> MethodOutput:
    """The method's step on one micro-batch, its loss a share of the whole batch's:
    ``L = sum_{i: y_i != -100} l_i / num_items_in_batch`` (``l_i``: row ``i``'s loss).

    ``features`` ``(..., d)`` and ``labels`` ``(...)`` are flattened to rows, tokens and padding
    (-100) alike. ``num_items_in_batch`` None gives the method's own mean over the micro-batch.
    :class:`LabelembLoss` calls it; so can a model that computes its loss in ``forward`` without a
    ``compute_loss_func`` (a forward that takes ``labels`` and ``**kwargs`` gets the Trainer's
    ``num_items_in_batch``), returning ``loss`` and ``logits`` (one row each) from one pass of the head.
    """
    if labels is None:
        raise ValueError(
            "the Trainer passed no labels to the loss: a model whose forward takes no `labels` argument "
            "hides the column from it; set TrainingArguments(label_names=['labels'])"
        )
    if not isinstance(features, Tensor) or features.shape[:-1] != labels.shape:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(
            f"features must be the backbone's output lined up with the labels, ({tuple(labels.shape)} "
            f"+ (d,)), got {shape}; a causal language model shifts its labels in the collator"
        )
    if labels.dim() > 1 and "token" not in method.serves:
        raise ValueError(
            f"{type(method).__name__} cannot be the output layer of token targets "
            f"{tuple(labels.shape)}: {method.cannot_serve.get('token', '')}"
        )
    if method.needs_index and index is None and method.training:
        raise ValueError(
            f"{type(method).__name__} needs each example's dataset position in training: give the data "
            "set an `index` column, take `index` in the model's forward and return it, "
            "LabelembOutput(..., index=index)"
        )
    target = labels.reshape(-1)
    # An evaluation set's positions are not the training set's, whose per-example state the method
    # would read at them: evaluation goes without (lwr's loss is then the plain cross-entropy).
    if not (method.needs_index and method.training):
        index = None
    rows = features.reshape(-1, features.shape[-1])
    if num_items_in_batch is None:
        return method(rows, target, index=index)
    # A step whose every label is padding has a zero sum: a zero loss, not 0 / 0.
    items = (
        num_items_in_batch.clamp(min=1)
        if isinstance(num_items_in_batch, Tensor)
        else max(num_items_in_batch, 1)
    )
    return method.micro_batch_loss(rows, target, items, index=index)


class LabelembLoss:
    """A labelemb method as ``Trainer(compute_loss_func=...)``: called as
    ``loss(outputs, labels, num_items_in_batch=None)``, it returns::

        L = (1 / n) sum_{i: y_i != -100} l_i(h_i, y_i),   n = num_items_in_batch

    with ``h = outputs["features"]`` (see :class:`LabelembOutput`) and ``l_i`` row ``i``'s loss
    under the method; ``n`` None gives the method's own mean. Token targets ``(N, T)`` and their
    features ``(N, T, d)`` are rows. See :func:`method_loss` and the module's notes.
    """

    def __init__(self, method: Method, *, features_key: str = "features", index_key: str = "index") -> None:
        if not isinstance(method, Method):
            raise TypeError(
                "LabelembLoss takes a labelemb method (labelemb.methods.build(...)), "
                f"got {type(method).__name__}"
            )
        if method.ignore_index != TRAINER_IGNORE_INDEX:
            raise ValueError(
                f"the Trainer counts the labels that are not -100 in num_items_in_batch, but the method "
                f"ignores {method.ignore_index}: build it with ignore_index=-100"
            )
        refuse_batch_shape(method, "a Hugging Face Trainer")
        self.method = method
        self.features_key = features_key
        self.index_key = index_key

    def __call__(
        self, outputs: Any, labels: Tensor | None, num_items_in_batch: Tensor | int | None = None
    ) -> Tensor:
        features = _entry(outputs, self.features_key)
        if features is None:
            raise ValueError(
                f"the model's output has no {self.features_key!r}: return the backbone's features, "
                f"e.g. LabelembOutput(logits=head.logits(h), {self.features_key}=h)"
            )
        index = _entry(outputs, self.index_key)
        return method_loss(self.method, features, labels, num_items_in_batch, index=index).loss


class EpochEndCallback(TrainerCallback):
    """Runs the method's epoch-level update at the end of each of the Trainer's epochs::

        state_{e+1} = on_epoch_end(statistics of epoch e)

    (online label smoothing's soft labels, lwr's recorded outputs). At the start of
    training it checks that the optimiser trains the method's parameters, and warns in one line
    when the Trainer accumulates gradients for a method that accumulation cannot make exact
    (lwal and its presets: :attr:`~labelemb.methods.base.Method.accumulation_caveat`).

    A method that reads the dev split's predictions (adafocal:
    :class:`~labelemb.methods.abilities.ReadsDev`) needs ``dev_predictions``, a function of the
    method that returns the dev split's logits and labels: it is called at each epoch's end, before
    the update, with the model in evaluation mode (:mod:`labelemb.integrations.dev_predictions`).
    Without it such a method is refused here, in one line.
    """

    def __init__(self, method: Method, *, dev_predictions: DevPredictions | None = None) -> None:
        refuse_without_dev([method], dev_predictions, "EpochEndCallback")
        self.method = method
        self.dev_predictions = dev_predictions

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        refuse_batch_shape(self.method, "a Hugging Face Trainer")
        self.method.warn_inexact_accumulation(args.gradient_accumulation_steps)
        if model is not None and any(module is self.method for module in model.modules()):
            return
        held = {id(p) for group in getattr(optimizer, "param_groups", ()) for p in group["params"]}
        missing = [
            name for name, p in self.method.named_parameters() if p.requires_grad and id(p) not in held
        ]
        if missing:
            raise ValueError(
                f"the optimiser does not train the method's parameters {missing}: make the method a "
                "submodule of the model (self.head = labelemb.methods.build(...)) so that the Trainer's "
                "optimiser covers it"
            )

    def on_epoch_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        if self.dev_predictions is not None and isinstance(self.method, ReadsDev):
            hand_dev_predictions(self.method, self.dev_predictions, model)
        self.method.on_epoch_end()


def _entry(outputs: Any, key: str) -> Any:
    """``outputs[key]`` of a mapping (a ``ModelOutput``, a dict) or ``outputs.key``; None if absent."""
    if isinstance(outputs, Mapping):
        return outputs.get(key)
    return getattr(outputs, key, None)
