"""A run's records and results: the record of each check (where it stands, what its training has
cost, the task's evaluation of its weights, the mean training terms since the last check), which
of its checks a run reports (:func:`selected_record`; :func:`last_is_selected` at a check, a rule a
check is evaluated knowing: :func:`selectable_check`), its summary (the metrics at the selected
check and at the last), the tensors it saves besides its weights (the label representation), and
the notes on a run that did not learn (at chance, diverged, degenerate tag sets) or fit its
temperature at a bound."""

from __future__ import annotations

import logging
import math
import platform
from typing import Any

import torch

from ..assembly.plan import RunPlan
from ..data import Dataset
from ..data.text.sequences import TextDataset
from ..metrics.temperature import TEMPERATURE_RANGE
from ..rundir import MAX_SAVED_REPRESENTATION, outputs_folder
from ..tasks import Predictor, Selectable, Task, always_selectable, evaluate_check
from ..tasks.multi_label import degenerate_tag_sets_warning
from ..version import code_version
from .flops import training_flops
from .seed_run import Progress, SeedRun, Timetable

logger = logging.getLogger(__name__)

#: Fewer checks than this, and a run at chance may simply not have started to learn yet.
CHANCE_MIN_CHECKS = 3


def summarize(
    plan: RunPlan,
    progress: Progress,
    dataset: Dataset | TextDataset,
    task: Task,
    device: torch.device,
    num_parameters: int,
) -> dict[str, Any]:
    """A finished run's ``summary.json``: the metrics at the selected check and at the last."""
    records = progress.records
    final = records[-1]
    selection = plan.selection if task.selection_metric in final else "final"
    selected = selected_record(records, task, selection)
    summary: dict[str, Any] = {
        "experiment": plan.experiment,
        "method": plan.method.name,
        "seed": plan.seed,
        "dataset": dataset.name,
        "model": plan.backbone.name,
        "selection": selection,
        # What the network reads, so that a prediction can rebuild it without the data.
        "input_shape": list(dataset.input_shape),
    }
    if getattr(dataset, "details", None):
        summary["data"] = dict(dataset.details)
    # Test first: the figure a reader looks for.
    summary.update({f"selected_{name}": selected.get(name) for name in reversed(task.metrics)})
    # None where the selected check was recorded without them (a run continued from an older one).
    summary.update({f"selected_{name}": selected.get(name) for name in task.selected_fields})
    # Only where they are: a temperature fit that found no minimum, degenerate tag sets.
    for note in ("temperature_at_bound", "degenerate_tag_sets"):
        if note in selected:
            summary[f"selected_{note}"] = selected[note]
    summary.update({"selected_step": selected["step"], "selected_epoch": selected["epoch"]})
    if "outputs" in selected:
        summary["selected_outputs"] = selected["outputs"]
    summary.update({f"final_{name}": final.get(name) for name in reversed(task.metrics)})
    summary.update(task.summary_fields())
    summary["scoring"] = task.scoring.record()
    epochs_trained = progress.examples / len(dataset.train)
    if progress.records and "train_flops" in progress.records[-1]:
        summary["train_flops"] = progress.records[-1]["train_flops"]
    summary["stopped"] = progress.stopped or {
        "reason": "max_steps" if progress.step == plan.timing.max_steps else "epochs",
        "step": progress.step,
        "epoch": epochs_trained,
    }
    if progress.continued_from is not None:
        summary["continued_from"] = progress.continued_from
    if len(progress.code) > 1:  # resumed under other code: each part's code, where it took over
        summary["trained_by"] = progress.code
    summary.update(
        {
            "epochs": plan.timing.epochs,
            "steps": progress.step,
            "epochs_trained": epochs_trained,
            "seconds_per_epoch": progress.train_seconds / max(epochs_trained, 1e-12),
            "wall_seconds": progress.wall_seconds,
            "num_parameters": num_parameters,
            "class_names": list(dataset.class_names),
            "device": str(device),
            "torch": torch.__version__,
            "labelemb": code_version(),
            "machine": platform.machine(),
        }
    )
    return summary


def saved_tensors(
    run: SeedRun, summary: dict[str, Any], predict: Predictor, task: Task, timetable: Timetable
) -> dict[str, Any]:
    """The tensors a finished run saves: the method's, and a label representation, so that
    analysis never needs the data: the method's own, or for a method that learns none the one the
    task reads off the trained model (``summary`` says which)."""
    tensors = run.method.artifacts()
    if "representation" in tensors:
        summary["representation_source"] = "learned"
    elif run.method.num_classes <= MAX_SAVED_REPRESENTATION:
        tensors["representation"], summary["representation_source"] = task.label_representation(
            predict, timetable.dev, timetable.test, run.method.num_classes
        )
    return tensors


def at_chance(records: list[dict[str, Any]], levels: dict[str, float], counts: dict[str, int]) -> bool:
    """Whether every check's error on every split of ``levels`` stayed at that split's chance level.

    "At" allows two standard errors of a proportion at chance below it, so that a run that barely
    beats always answering the most frequent class by the luck of a small split is still said to
    be there; a split with one class only (chance 0 %) says nothing.
    """
    if len(records) < CHANCE_MIN_CHECKS or not levels or min(levels.values()) <= 0:
        return False
    for metric, chance in levels.items():
        share = chance / 100.0
        margin = 200.0 * math.sqrt(share * (1.0 - share) / max(counts[metric], 1))
        if any(metric not in record or record[metric] < chance - margin for record in records):
            return False
    return True


def warn_if_at_chance(run: SeedRun, task: Task, timetable: Timetable) -> None:
    """Warn once when a classifier's error never left the chance level (a method that did not
    learn on this data, e.g. at a learning rate that suits another), naming what to try."""
    levels_of = getattr(task, "chance_levels", None)
    if levels_of is None:
        return
    levels = levels_of(timetable.dev, timetable.test)
    counts = {
        f"{name}_error": len(split)
        for name, split in (("dev", timetable.dev), ("test", timetable.test))
        if split is not None
    }
    if not at_chance(run.progress.records, levels, counts):
        return
    metric = "dev_error" if "dev_error" in levels else "test_error"
    logger.warning(
        "%s (seed %d) never beat chance: its %s stayed at %.2f %% or worse at all %d checks "
        "(always answering the most frequent class gives %.2f %%). Try another train.lr (10x "
        "smaller or larger), more train.epochs, or the method's other options; onehot on the same "
        "data shows what the model can reach.",
        run.plan.method.name,
        run.plan.seed,
        metric.replace("_", " "),
        min(record[metric] for record in run.progress.records),
        len(run.progress.records),
        levels[metric],
    )


def warn_if_diverged(run: SeedRun) -> None:
    """Warn once when a check's test predictions had non-finite logits (the run diverged: its
    calibration there is undefined, and its error is that of whatever argmax the NaNs gave)."""
    records = run.progress.records
    diverged = [record for record in records if record.get("test_non_finite")]
    if not diverged:
        return
    logger.warning(
        "%s (seed %d) diverged: its outputs were not finite for some test examples at %d of %d "
        "checks, the first at step %d (their calibration is left out). Try a 10x smaller train.lr, "
        "or train.clip_grad_norm.",
        run.plan.method.name,
        run.plan.seed,
        len(diverged),
        len(records),
        diverged[0]["step"],
    )


def warn_if_temperature_at_bound(run: SeedRun, summary: dict[str, Any], timetable: Timetable) -> None:
    """Warn once when the selected check's temperature stopped at a bound of its range: the
    probabilities a prediction gives (scaled by it) are then near 0 or 1 whatever the input (the
    floor: a dev split with (almost) no mistakes to fit on), or near uniform (the ceiling)."""
    bound = summary.get("selected_temperature_at_bound")
    if bound is None:
        return
    low, high = TEMPERATURE_RANGE
    examples = len(timetable.dev) if timetable.dev is not None else 0
    if bound == "floor":
        meaning = (
            f"hit its floor {low:g}: the dev split ({examples} examples) is predicted (almost) entirely "
            "right and confidently, too few mistakes to fit a temperature on, so the scaled probabilities "
            "are near 0 or 1 and overconfident, also on inputs of no class. Fit it on a larger dev split "
            "(data.files.dev, or data.files.dev_fraction for your own files)"
        )
    else:
        # Measured: negative label smoothing on clean Fashion-MNIST, 55 % wrong at confidence 1.
        meaning = (
            f"hit its ceiling {high:g}: on the dev split ({examples} examples) no temperature beats "
            "flattening every score, the wrong predictions being as confident as the right ones (or the "
            "scores all equal), so the scaled probabilities are near uniform. The network, not the dev "
            "split, is at fault: look at its error and its loss"
        )
    logger.warning(
        "%s (seed %d): the temperature fit on the dev split at the selected check (step %d) %s.",
        run.plan.method.name,
        run.plan.seed,
        summary["selected_step"],
        meaning,
    )


def warn_if_degenerate_tag_sets(run: SeedRun, summary: dict[str, Any]) -> None:
    """Warn once when the selected check's test tag sets were degenerate (most tags for most texts:
    :func:`~labelemb.tasks.multi_label.degenerate_tag_sets`), which its set figures alone hide."""
    facts = summary.get("selected_degenerate_tag_sets")
    if facts is None:
        return
    logger.warning(
        "%s (seed %d): at the selected check (step %d) %s.",
        run.plan.method.name,
        run.plan.seed,
        summary["selected_step"],
        degenerate_tag_sets_warning(facts),
    )


def check_record(
    run: SeedRun,
    predictor: Predictor,
    task: Task,
    dev: Any,
    test: Any,
    num_train: int,
    means: dict[str, float],
) -> tuple[dict[str, Any], dict[str, str]]:
    """``run``'s record of a check, its weights as ``predictor`` gives them evaluated on ``dev``
    and ``test`` by ``task``, with ``means`` (the training terms since the last check); and the
    files that evaluation produced (decoded output), for the record's ``outputs`` folder."""
    progress = run.progress
    record = progress_record(progress, num_train)
    if run.flops_per_example is not None:
        record["train_flops"] = training_flops(run.flops_per_example, progress.examples)
    selectable = selectable_check(progress.records, task, run.plan.selection)
    record.update(evaluate_check(task, predictor, dev, test, selectable))
    record.update(means)
    files = task.evaluation_files()
    if files:
        record["outputs"] = outputs_folder(progress.step)
    return record, files


def progress_record(progress: Progress, num_train: int) -> dict[str, Any]:
    """The position and time fields that open each line of ``metrics.jsonl``."""
    return {
        "step": progress.step,
        "epoch": progress.examples / num_train,
        "examples": progress.examples,
        "wall_seconds": progress.wall_seconds,
        "train_seconds": progress.train_seconds,
    }


def selected_record(records: list[dict[str, Any]], task: Task, selection: str) -> dict[str, Any]:
    """The check a run reports: with ``best_dev`` the first check that reaches the best value of
    the task's selection metric (as early stopping would pick), else (or with no dev split) the last."""
    final = records[-1]
    if selection != "best_dev" or task.selection_metric not in final:
        return final
    sign = 1.0 if task.lower_is_better else -1.0
    return min(records, key=lambda r: (sign * r[task.selection_metric], r["step"]))


def last_is_selected(records: list[dict[str, Any]], task: Task, selection: str) -> bool:
    """Whether the last of ``records`` is the check the run reports so far (:func:`selected_record`):
    its weights are the ones a prediction reads."""
    return selected_record(records, task, selection) is records[-1]


def selectable_check(records: list[dict[str, Any]], task: Task, selection: str) -> Selectable:
    """Whether a new check, given its dev figures, can still become the one :func:`selected_record`
    picks after ``records``: with ``best_dev`` only a check that beats every earlier one (the
    first to reach the best is picked); otherwise every check (the last is picked, and which check
    is the last is not known while it is evaluated)."""
    metric = task.selection_metric
    earlier = [record[metric] for record in records if metric in record]
    if selection != "best_dev" or not earlier:
        return always_selectable
    sign = 1.0 if task.lower_is_better else -1.0
    best = min(sign * value for value in earlier)
    return lambda record: metric not in record or sign * record[metric] < best
