"""Out-of-sample probabilities by K-fold cross-fitting: each fold's model trained on the other
folds, through the harness's own trainer (:func:`labelemb.training.train`, the run's recipe: its
method, backbone, schedule, checks and selected weights), then asked for the probabilities of the
rows it did not see (:func:`labelemb.load`, the run's fitted temperature applied).

The folds train one after another: the batched trainer stacks runs that share their training
rows (seeds), and the folds' rows differ. Each fold's run is a run folder of its own, so that an
interrupted search resumes at its fold, and a finished fold is read back, not trained again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..assembly import resolve_device
from ..config import RunConfig
from ..data import Dataset
from ..predict import load
from ..progress import draws_bar
from ..training import train
from .folds import assign_folds, fold_dataset


@dataclass(frozen=True)
class CrossFit:
    """Each training row's out-of-sample probabilities (N, m), the fold that held it out, each fold's
    run folder and the seconds the folds took (training and scoring)."""

    probabilities: np.ndarray
    fold: np.ndarray
    run_dirs: list[Path]
    seconds: float


def fold_config(config: RunConfig, folder: Path, k: int) -> RunConfig:
    """The run of fold ``k`` (counted from 1): ``config`` written under ``folder``/folds/fold{k}."""
    experiment = (folder / "folds" / f"fold{k}").relative_to(config.output_dir).as_posix()
    return config.model_copy(update={"experiment": experiment})


def cross_fit(
    config: RunConfig, dataset: Dataset, folds: int, folder: Path, *, progress: bool = True
) -> CrossFit:
    """Train ``folds`` fold models of ``config`` on ``dataset`` (its training labels as given) and
    score each on its held-out rows (see the module docstring). ``folder`` holds the folds' runs;
    the folds are drawn with the config's seed."""
    start = time.perf_counter()
    labels = dataset.train.labels.cpu().numpy()
    fold = assign_folds(labels, folds, config.seed)
    probabilities = np.zeros((len(labels), dataset.num_classes), dtype=np.float64)
    run_dirs = []
    bar = tqdm(total=folds, desc="cross-fitting", unit="fold", disable=not draws_bar(progress))
    with bar:
        for k in range(folds):
            held = np.flatnonzero(fold == k)
            run = fold_config(config, folder, k + 1)
            data = fold_dataset(dataset, held)
            train(run, dataset=data, progress=progress)
            predictor = load(run.run_dir(), device=resolve_device(run.train.device))
            probabilities[held] = predictor.predict_proba(data.test)
            run_dirs.append(run.run_dir())
            bar.update(1)
    return CrossFit(probabilities, fold, run_dirs, time.perf_counter() - start)
