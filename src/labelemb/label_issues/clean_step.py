"""The ``clean:`` step of ``labelemb train`` and ``labelemb compare``: the list of wrong labels
made first, then every run trained on the data it cleans.

:func:`cleaned_config` makes the list that ``labelemb label-issues`` makes with the step's options
(:func:`~.finding.find_label_issues`: K-fold cross-fitted runs of ``clean.method``, cleanlab's
detectors), on the run's own data and noise, and returns the config with ``data.clean`` naming
it (:mod:`labelemb.data.cleaning` does the cleaning, as for a list made beforehand).

The list is kept in the experiment's folder, under ``clean-<key>/``, where ``<key>`` is a digest
of all that makes it: the fold runs' config as a run folder compares it (data and its options,
noise, backbone, method, training, seed), the data's content digest where the data set has one,
and the step's options but ``action`` (both actions read one list). A later run with the same key
reads the list back (``clean-step.json`` says the list there is whole); any change makes a new
list in a folder of its own, so a run never cleans with a list made for other data or labels.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..assembly import data_of
from ..config import CleanStep, ConfigError, RunConfig
from ..data import Dataset
from ..data.cleaning import read_issue_list
from ..data.registry import dataset_yields
from ..experiment.setting import typed_config
from ..progress import says_lines
from ..registry import unknown_name_message
from ..rundir.files import read_json, write_text
from .detectors import DYNAMICS_DETECTORS, FILTERS, RANKINGS
from .finding import find_label_issues
from .folds import LabelIssuesError
from .listing import LIST_CSV

#: The file in a list's ``clean-<key>`` folder that says the list there is whole, and what made it.
MADE_FILE = "clean-step.json"


def cleaned_config(config: RunConfig) -> RunConfig:
    """``config`` with its ``clean:`` step done: the list made (or read back) and named in
    ``data.clean`` with the step's action; ``clean:`` itself dropped. A config without the step
    is handed back as it is."""
    step = config.clean
    if step is None:
        return config
    check_step(step)
    path = the_list(config, step)
    say(says_lines(config.train.progress), cleaning_line(path, step))
    return typed_config(
        config, {"clean": None, "data.clean": {"issues": str(path.resolve()), "action": step.action}}
    )


def the_list(config: RunConfig, step: CleanStep) -> Path:
    """The ``label_issues.csv`` of ``config``'s step: read back from its ``clean-<key>`` folder
    where a run made it whole, else made there now."""
    searched = searched_config(config, step)
    made = what_makes(searched, step)
    folder = Path(config.output_dir) / config.experiment / f"clean-{list_key(made)}"
    lines = says_lines(config.train.progress)
    path = made_list(folder, made)
    if path is not None:
        say(lines, f"clean: the list of wrong labels is read back from {path.parent}")
        return path
    check_single_labels(searched)
    say(
        lines,
        f"clean: making the list of wrong labels ({step.folds} folds of {step.method}, filter "
        f"{step.filter}) in {folder}",
    )
    path = make_list(searched.model_copy(update={"experiment": f"{config.experiment}/{folder.name}"}), step)
    kept = {"list": path.relative_to(folder).as_posix(), "made_of": made}
    write_text(folder / MADE_FILE, json.dumps(kept, indent=1) + "\n")  # last: the list is whole
    return path


def check_step(step: CleanStep) -> None:
    """Refuse, in one line, a detector or filter label-issues does not have, or a detector of the
    training dynamics without ``clean.dynamics``."""
    if step.rank_by not in RANKINGS:
        raise LabelIssuesError(f"clean.rank_by: {unknown_name_message('detector', step.rank_by, RANKINGS)}")
    if step.rank_by in DYNAMICS_DETECTORS and not step.dynamics:
        raise LabelIssuesError(
            f"clean.rank_by: detector {step.rank_by!r} reads the training dynamics: add clean.dynamics: "
            "true (one more run, on every training row), or rank by another detector"
        )
    if step.filter not in FILTERS:
        raise LabelIssuesError(f"clean.filter: {unknown_name_message('filter', step.filter, FILTERS)}")


def searched_config(config: RunConfig, step: CleanStep) -> RunConfig:
    """The config each fold run trains: ``config`` with the step's method (its ``methods:`` entry,
    no other method's options) and seed, and no cleaning of its own."""
    seed = config.seed if step.seed is None else step.seed
    try:
        return typed_config(config, {"clean": None, "method": {"name": step.method}, "seed": seed})
    except ConfigError as error:  # an unknown method: said as the key that names it
        raise ConfigError(f"clean.method: {error}") from None


def what_makes(searched: RunConfig, step: CleanStep) -> dict[str, Any]:
    """Everything that makes the list, as JSON: the fold runs' config as a run folder compares it
    (its experiment aside: the list's folder is inside the experiment's), the data's content
    digest (None: the data set checks its own files) and the step's options but ``action``."""
    runs = searched.comparable()
    runs.pop("experiment")
    options = step.model_dump(mode="json", exclude={"action", "seed"})
    return {"runs": runs, "data": data_of(searched).fingerprint(), "step": options}


def list_key(made: dict[str, Any]) -> str:
    """The list's key: the first 12 hex digits of the sha256 of ``made`` (:func:`what_makes`)."""
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()[:12]


def made_list(folder: Path, made: dict[str, Any]) -> Path | None:
    """The list in ``folder``, where a run made it whole from ``made``; None where it has not."""
    record = folder / MADE_FILE
    if not record.exists():
        return None
    kept = read_json(record)
    path = folder / str(kept.get("list", LIST_CSV))
    return path if kept.get("made_of") == made and path.is_file() else None


def check_single_labels(searched: RunConfig) -> None:
    """Refuse, in one line, data whose training rows carry no single class label (sequences, tag
    sets): a list of wrong labels cleans one label a row."""
    name = searched.data.name
    if dataset_yields(name, searched.data_sections()) == "token_pairs":
        raise LabelIssuesError(
            f"clean: cleans one class label per training row; data set {name!r} is sequence-to-sequence "
            "(its targets are sequences): drop clean:"
        )
    dataset = data_of(searched).load()
    if not isinstance(dataset, Dataset) or dataset.multi_label:
        raise LabelIssuesError(
            f"clean: cleans one class label per training row; data set {name!r} gives each row a set of "
            "tags: drop clean: (labelemb label-issues lists a tag set's likely wrong and missing tags)"
        )


def make_list(searched: RunConfig, step: CleanStep) -> Path:
    """The list of wrong labels of ``searched``'s training rows, made as ``labelemb label-issues``
    makes it with the step's options; its ``label_issues.csv``."""
    issues = find_label_issues(
        searched,
        folds=step.folds,
        rank_by=step.rank_by,
        filter_by=step.filter,
        dynamics=step.dynamics,
        progress=searched.train.progress,
    )
    return issues.folder / LIST_CSV


def cleaning_line(path: Path, step: CleanStep) -> str:
    """What the cleaning does to the training rows, in a line."""
    listed = read_issue_list(path)
    flagged, rows = int(listed.flagged.sum()), len(listed.flagged)
    if step.action == "remove":
        done = f"every run trains on the {rows - flagged:,} rows left"
    else:
        changed = int((listed.flagged & (np.array(listed.given) != np.array(listed.suggested))).sum())
        done = f"every run trains with the {changed:,} whose suggested label differs relabelled"
    return f"clean: {flagged:,} of {rows:,} training rows flagged by {path}; {done} (action: {step.action})"


def say(lines: bool, text: str) -> None:
    """``text`` on stderr, where lines are said (:func:`~labelemb.progress.says_lines`)."""
    if lines:
        print(text, file=sys.stderr, flush=True)


__all__ = ["MADE_FILE", "cleaned_config"]
