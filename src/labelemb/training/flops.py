"""The counted FLOPs of a run's training, for comparisons at equal compute.

Wall time is noisy on a shared machine; counted floating-point operations are not. At the start
of a run (and again on resume, which gives the same count) the training step, forward and
backward, runs on a copy of the run's network over its first few batches of epoch 0 under
PyTorch's :class:`~torch.utils.flop_counter.FlopCounterMode`, which counts the matrix products
and convolutions (2 FLOPs per multiply-add; elementwise work, the optimiser update and embedding
look-ups are not counted), the in-place ones of the chunked heads included
(:data:`IN_PLACE_PRODUCTS`). The count is divided by the batches' *work*, the task's measure of
what a step's cost grows with (examples for classification; source plus target tokens for
sequence to sequence, :meth:`~labelemb.tasks.Task.work`), and :func:`training_flops` scales it to
the work of the examples a run has seen: the mean work of a training example times the examples
seen, exact at every epoch's end and an estimate within an epoch.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..assembly.network import StepOptions
from ..tasks import Task
from .epoch_order import epoch_order, rows_per_example

#: Batches of epoch 0 a run's step is counted over.
COUNTED_BATCHES = 3


def _in_place_product(bias_shape, a_shape, b_shape, *rest, out_shape=None, **options) -> int:
    """2 m n k for ``C.addmm_(A, B)`` (or its batched form), as FlopCounterMode counts ``addmm``."""
    *batch, m, k = a_shape
    count = 2 * m * k * b_shape[-1]
    for size in batch:
        count *= size
    return count


#: The in-place matrix products FlopCounterMode leaves out: the chunked heads accumulate their
#: parameters' gradients with ``addmm_``, which would otherwise go uncounted (a third of an
#: output layer's FLOPs in every chunked batch).
IN_PLACE_PRODUCTS = {torch.ops.aten.addmm_: _in_place_product, torch.ops.aten.baddbmm_: _in_place_product}


def flops_per_example(
    network: torch.nn.Module,
    task: Task,
    train: Any,
    seed: int,
    batch_size: int,
    options: StepOptions,
    batches: int = COUNTED_BATCHES,
) -> float:
    """The training FLOPs (forward and backward) per training example of ``network`` on ``train``:
    the mean work of a training example times the FLOPs per unit of work of its first ``batches``
    batches (:func:`flops_per_work`)."""
    mean_work = mean_work_per_example(task, train)
    return mean_work * flops_per_work(network, task, train, seed, batch_size, options, batches)


def flops_per_work(
    network: torch.nn.Module,
    task: Task,
    train: Any,
    seed: int,
    batch_size: int,
    options: StepOptions,
    batches: int,
) -> float:
    """The training FLOPs of ``network``'s steps over the first ``batches`` batches of epoch 0 of
    ``train``, per unit of the task's work in them.

    The network is copied (a step changes batch-norm statistics and a method's running tables),
    and the random state is put back after, so counting changes nothing of the run.
    """
    method = getattr(network, "method", network)
    order = epoch_order(task, method, train, seed, 0, batch_size)
    group = rows_per_example(method)
    counted = copy.deepcopy(network).train()
    cuda = [p.device for p in counted.parameters() if p.device.type == "cuda"][:1]
    work = 0.0
    with torch.random.fork_rng(devices=cuda):
        with FlopCounterMode(display=False, custom_mapping=IN_PLACE_PRODUCTS) as counter:
            width = batch_size * group
            for start in range(0, min(batches * width, len(order)), width):
                index = order[start : start + width].to(train_device(train))
                inputs, targets = task.batch(train, index)
                if isinstance(inputs, torch.Tensor):
                    inputs = options.prepare(inputs, train=False)  # the run's augmentation draws stay its own
                with options.precision(targets.device):
                    output = counted(inputs, targets, index=index)
                output.loss.backward()
                work += task.work(train, index) / group  # per example drawn
    return counter.get_total_flops() / max(work, 1e-12)


def mean_work_per_example(task: Task, train: Any) -> float:
    """The task's work of the whole training split, per example."""
    everything = torch.arange(len(train), device=train_device(train))
    return task.work(train, everything) / max(len(train), 1)


def train_device(split: Any) -> torch.device:
    labels = getattr(split, "labels", None)
    return labels.device if labels is not None else split.source.device


def training_flops(per_example: float, examples: int) -> float:
    """The counted FLOPs of training on ``examples`` examples."""
    return per_example * examples
