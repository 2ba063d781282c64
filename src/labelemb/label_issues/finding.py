""":func:`find_label_issues`: which training rows of a data set are likely wrong, as ``labelemb
label-issues`` finds them: the config's run cross-fitted over K folds (:mod:`.cross_fit`), cleanlab's
detectors on the out-of-sample probabilities (:mod:`.detectors`), judged where the truth is known
(:mod:`.judging`), the ranked list written (:mod:`.listing`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..assembly import data_of
from ..config import RunConfig, build_config
from ..data import Dataset
from ..data.registry import dataset_yields
from ..experiment.needs import check_needed_data
from ..experiment.setting import ConfigSource, base_config, keyword_overrides, run_overrides
from .cross_fit import cross_fit, frozen_features
from .detectors import DEFAULT_DETECTOR, DEFAULT_FILTER, check_choices, detect, ranking
from .dynamics import with_dynamics
from .folds import DEFAULT_FOLDS, LabelIssuesError, check_foldable, check_tags_foldable, training_origins
from .judging import judge, judge_tags
from .listing import LabelIssues, listed_rows, write_listing
from .neighbours import KNN_VOTE, knn_vote
from .page import write_page
from .splits import check_split, searched_split
from .tag_sets import detect_tags, listed_tag_rows, tag_summary


def find_label_issues(
    config: ConfigSource | RunConfig = None,
    *,
    folds: int = DEFAULT_FOLDS,
    method: str | None = None,
    seed: int | None = None,
    rank_by: str = DEFAULT_DETECTOR,
    filter_by: str = DEFAULT_FILTER,
    dynamics: bool = False,
    split: str = "train",
    overrides: Sequence[str] = (),
    progress: bool = True,
    **options: Any,
) -> LabelIssues:
    """Rank the training rows of ``config``'s data set by how likely their label is wrong, as
    ``labelemb label-issues`` does, and write the list (CSV, JSON lines) and a page of its flagged
    rows (``label-issues.html``) into ``OUTPUT_DIR/EXPERIMENT/label-issues/METHOD-kFOLDS-seedSEED/``.

    ``config`` is a YAML file, a mapping, a :class:`~labelemb.config.RunConfig` or None (the
    digits demo); ``overrides`` (``key=value``) and the other keywords change it as for
    :func:`labelemb.train`. Each of ``folds`` stratified folds (drawn with ``seed``, default the
    config's) is held out once while a run of the config (its ``method``, default the config's)
    trains on the others; the held-out rows' probabilities are then read by cleanlab's detectors:
    the list is ranked by ``rank_by``'s label quality (``self_confidence``, ``normalized_margin``,
    ``confidence_weighted_entropy``; a run on a frozen backbone also gets ``knn_vote``, the
    neighbours' vote on its features), and ``filter_by`` (a filter of
    :func:`cleanlab.filter.find_label_issues`) flags rows. With ``dynamics``, one more run trains on
    every row and its training dynamics are detectors too (``aum``, ``final_margin``, ``final_loss``,
    ``first_learned``). Where the labels' truth is known (a ``noise:`` section, a true-label column)
    each detector is judged against it. ``split="test"`` ranks the test split's rows instead, the
    folds trained on its other folds alone (:mod:`labelemb.label_issues.splits`; the list's folder
    then ends in ``-test``). Tag sets are judged pair by pair, each row listed with its
    likely wrong and missing tags (:mod:`labelemb.label_issues.tag_sets`; no ``dynamics``)."""
    check_choices(rank_by, filter_by, dynamics)
    run = _config(config, overrides, options, method, seed, progress)
    check_split(split, run.noise is not None)
    dataset, features = _searched_data(run, folds, dynamics, split)
    folder = list_folder(run, folds, split)
    if dataset.multi_label:
        return _tag_issues(run, dataset, features, folds, folder, (rank_by, filter_by, split), progress)
    labels = dataset.train.labels.cpu().numpy().astype(np.int64)
    data = dataset if features is None else features
    fitted = cross_fit(run, data, folds, folder, progress=progress)
    detection = detect(labels, fitted.probabilities, filter_by)
    if features is not None:
        votes = knn_vote(features.train.inputs, labels)
        detection = replace(detection, scores={**detection.scores, KNN_VOTE: votes})
    detection, ran = with_dynamics(detection, run, data, folder, progress) if dynamics else (detection, {})
    clean = None if dataset.noise is None else dataset.noise.clean["train"].cpu().numpy().astype(np.int64)
    judged = None if clean is None else judge(clean != labels, detection)
    rows = listed_rows(
        detection, labels, training_origins(dataset), dataset.class_names, fitted.fold, rank_by, clean
    )
    summary = {
        **_made(run, folds, rank_by, filter_by, split),
        "rows": len(labels),
        "flagged": int(detection.flagged.sum()),
        "estimated_wrong": detection.estimated_wrong,
        "class_names": list(dataset.class_names),
        "noise_matrix": detection.noise_matrix.tolist(),
        "noise_matrix_reads": "T[i][j] = P(given label j | true class i), rows summing to 1",
        "judged": judged,
        "fold_runs": [str(path) for path in fitted.run_dirs],
        "seconds": round(fitted.seconds, 1),
        **ran,
    }
    issues = LabelIssues(
        rows,
        int(detection.flagged.sum()),
        detection.estimated_wrong,
        detection.noise_matrix,
        list(dataset.class_names),
        folder,
        summary,
        judged,
    )
    write_listing(issues, fitted.probabilities, labels, fitted.fold)
    write_page(issues, ranking(detection.scores[rank_by]), dataset)  # the flagged rows to look at
    return issues


def list_folder(run: RunConfig, folds: int, split: str = "train") -> Path:
    """Where the list of ``run``'s search over ``folds`` folds of ``split`` is written:
    ``OUTPUT_DIR/EXPERIMENT/label-issues/METHOD-kFOLDS-seedSEED`` (``-test`` for the test split)."""
    searched = f"{run.method.name}-k{folds}-seed{run.seed}" + ("" if split == "train" else f"-{split}")
    return Path(run.output_dir) / run.experiment / "label-issues" / searched


def _made(run: RunConfig, folds: int, rank_by: str, filter_by: str, split: str) -> dict[str, Any]:
    """The summary's first entries: which search made the list."""
    return {
        "data": run.data.name,
        "split": split,
        "method": run.method.name,
        "folds": folds,
        "seed": run.seed,
        "rank_by": rank_by,
        "filter": filter_by,
    }


def _config(
    config: ConfigSource | RunConfig,
    overrides: Sequence[str],
    options: dict[str, Any],
    method: str | None,
    seed: int | None,
    progress: bool,
) -> RunConfig:
    """The run each fold trains: ``config`` with the overrides, the keywords, the method and seed."""
    extra = [] if seed is None else [f"seed={seed}"]
    changes = run_overrides(
        [*overrides, *keyword_overrides(options), *extra], method=method, progress=progress
    )
    if isinstance(config, RunConfig):
        if not changes:
            return config
        rebuilt = build_config(config.model_dump(mode="json"), changes)
        return rebuilt.model_copy(update={"source_folder": config.source_folder})
    return base_config(config, changes)


def _searched_data(
    run: RunConfig, folds: int, dynamics: bool = False, split: str = "train"
) -> tuple[Dataset, Dataset | None]:
    """The data set ``run`` reads (its noise included) with ``split`` as its training rows
    (:func:`.splits.searched_split`), and its frozen backbone's features alike (None without one)."""
    dataset = _loaded_data(run, folds, dynamics, split)
    # The features are made before the split is swapped: those any run of the config reads.
    features = frozen_features(run, dataset)
    return searched_split(dataset, split), None if features is None else searched_split(features, split)


def _loaded_data(run: RunConfig, folds: int, dynamics: bool, split: str) -> Dataset:
    """The data set ``run`` reads (its noise included), once it is known to be searchable: class
    labels or tag sets (not sequences) whose ``split`` ``folds`` folds can split; else one line."""
    if dataset_yields(run.data.name, run.data_sections()) == "token_pairs":
        raise LabelIssuesError(
            f"data set {run.data.name!r} is sequence-to-sequence: its targets are sequences, not class "
            "labels; label-issues ranks the rows of a classification data set"
        )
    check_needed_data([run])
    dataset = data_of(run).load()
    _check_classes(dataset)
    if dataset.multi_label:
        if dynamics:
            raise LabelIssuesError(
                f"data set {dataset.name!r} gives each row a set of tags: the training dynamics "
                "(--dynamics) read one class label a row; drop --dynamics for tag sets"
            )
        check_tags_foldable(getattr(dataset, split).labels.cpu().numpy(), dataset.class_names, folds)
        return dataset
    check_foldable(getattr(dataset, split).labels.cpu().numpy().astype(np.int64), dataset.class_names, folds)
    return dataset


def _check_classes(dataset: Any) -> None:
    """Refuse, in one line, data whose rows carry neither a class label nor a set of tags."""
    if not isinstance(dataset, Dataset):
        raise LabelIssuesError(
            f"data set {dataset.name!r} is not a classification data set: label-issues ranks rows "
            "that each carry one class label or a set of tags"
        )


def _tag_issues(
    run: RunConfig,
    dataset: Dataset,
    features: Dataset | None,
    folds: int,
    folder: Path,
    choices: tuple[str, str, str],
    progress: bool,
) -> LabelIssues:
    """:func:`find_label_issues` for tag sets (:mod:`.tag_sets`): the folds' sigmoid probabilities,
    each (row, tag) pair judged by cleanlab's multi-label functions, the list by row. ``choices``:
    the detector ranked by, the filter and the split searched."""
    rank_by, filter_by, split = choices
    tags = dataset.train.labels.cpu().numpy().astype(bool)
    fitted = cross_fit(run, dataset if features is None else features, folds, folder, progress=progress)
    detection = detect_tags(tags, fitted.probabilities, filter_by, rank_by)
    clean = None if dataset.noise is None else dataset.noise.clean["train"].cpu().numpy().astype(bool)
    judged = None if clean is None else judge_tags(clean != tags, detection)
    names = list(dataset.class_names)
    rows = listed_tag_rows(
        detection,
        tags,
        fitted.probabilities,
        fitted.thresholds,
        training_origins(dataset),
        names,
        fitted.fold,
        rank_by,
        clean,
    )
    summary = {
        **_made(run, folds, rank_by, filter_by, split),
        "rows": len(tags),
        "flagged": int(detection.flagged.sum()),
        "estimated_wrong": detection.estimated_wrong,
        "class_names": names,
        **tag_summary(detection, names),
        "judged": judged,
        "fold_runs": [str(path) for path in fitted.run_dirs],
        "seconds": round(fitted.seconds, 1),
    }
    issues = LabelIssues(
        rows,
        int(detection.flagged.sum()),
        detection.estimated_wrong,
        detection.tag_noise,
        names,
        folder,
        summary,
        judged,
        tag_sets=True,
    )
    write_listing(issues, fitted.probabilities, tags, fitted.fold)
    write_page(issues, ranking(detection.scores[rank_by]), dataset)
    return issues
