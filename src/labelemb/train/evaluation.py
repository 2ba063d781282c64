"""A check of a run: its record (where it stands, what its training has cost, the task's
evaluation of its weights, the mean training terms since the last check) and which of its checks
a run reports (:func:`selected_record`; :func:`last_is_selected` at a check), a rule a check is
evaluated knowing (:func:`selectable_check`)."""

from __future__ import annotations

from typing import Any

from ..rundir import outputs_folder
from ..tasks import Predictor, Selectable, Task, always_selectable, evaluate_check
from .flops import training_flops
from .seed_run import Progress, SeedRun


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
