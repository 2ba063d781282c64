"""The linear reference of a text comparison: what a linear classifier on TF-IDF does on the same
splits, fitted by scikit-learn beside the methods, so that every verdict on a text or tag data set
is read against a model a practitioner would try first (issue 100).

The features are scikit-learn's ``TfidfVectorizer`` of words and word pairs (sublinear tf,
``min_df`` 2: :data:`TFIDF`) fitted on the training texts alone, on each split's whole texts
(``dataset.texts``), not the tokens a network reads. Two models are fitted on them:

- a linear SVM (``LinearSVC``, one-vs-rest for tag sets), and
- logistic regression (``LogisticRegression``, multinomial; one-vs-rest for tag sets), whose
  probabilities are judged for calibration too,

each at every ``C`` of its grid (:data:`MODELS`), the one kept that is best on dev by the figure
the runs select by (dev error, dev macro-F1 where the config says so, dev macro mAP for tags).
They train on the training labels as the runs saw them (the noisy ones where the runs trained on
noise) and are judged on the test split as the runs are (its clean labels); where the training
labels are noisy, both are also fitted on the clean training labels, so that the noise's cost is
framed. The figures are the runs' own: test error and macro-F1 (:func:`macro_f1`), ECE and NLL of
the probabilities (:func:`~labelemb.metrics.calibration.measure_calibration`); for tag sets the
task's figures at the threshold chosen on dev (macro mAP, micro-F1, ...).

The record is kept in the experiment folder (:data:`~labelemb.analysis.reference_table.REFERENCE_FILE`)
with a sha256 key of everything it depends on (each split's texts and labels, the clean labels, the
options, scikit-learn's version) and of the source of the two modules that compute it (this one and
:mod:`.linear_models`: :func:`source_digest`); a record whose key differs, or that cannot be read,
is computed anew, never shown. A change to any other part of labelemb leaves it as it is: the record
names the labelemb version that made it, but is not refitted for another.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..analysis.reference_table import REFERENCE_FILE, REFERENCE_FORMAT
from ..assembly import data_of
from ..config import RunConfig
from ..data.files.options import FilesOptions
from ..data.registry import dataset_yields
from ..predict.source import read_start
from ..rundir import CONFIG_FILE, run_dirs, write_text
from ..tasks import build_task
from ..version import code_version
from . import linear_models
from .linear_models import MODELS, TFIDF, Judge, ReferenceError, fit_model, tfidf_features

__all__ = ["ReferenceError", "comparison_reference", "linear_reference", "runs_config", "source_digest"]

logger = logging.getLogger(__name__)

#: What a comparison's data must yield for a reference to be fitted.
TEXT_KINDS = ("texts", "tagged texts")


def comparison_reference(
    experiment_dir: str | Path, config: Any = None, *, enabled: bool = True
) -> str | None:
    """Keep the linear reference of the comparison in ``experiment_dir`` (:func:`linear_reference`)
    for its tables, ranks and report to show: fitted, or read where it still fits, from ``config``
    (None: the config of its first finished run, its data read where that run read it). Returns
    None, or the one line saying why there is no reference (the methods' comparison goes on
    without it). Off (``enabled`` False), its record is removed: nothing shows a reference then."""
    path = Path(experiment_dir) / REFERENCE_FILE
    if not enabled:
        path.unlink(missing_ok=True)
        return None
    try:
        config = config if config is not None else runs_config(experiment_dir)
        if config is not None and linear_reference(config, experiment_dir) is not None:
            return None
    except (ValueError, OSError) as error:  # ReferenceError, DataError, a damaged run config
        if path.is_file() and not isinstance(error, ReferenceError):
            # The data moved or cannot be read here (records restored elsewhere): the reference
            # fitted on it stays, as the runs' own figures do, and the line says it went unchecked.
            return f"linear reference as kept, not checked against the data: {error}"
        path.unlink(missing_ok=True)
        return f"no linear reference: {error}"
    path.unlink(missing_ok=True)  # not texts: no reference, and none left from other data
    return None


def runs_config(experiment_dir: str | Path) -> Any:
    """The config of the first finished run in ``experiment_dir``, set to read its data where the
    run found it (the folders it recorded when it started); None where there is no finished run."""
    folders = run_dirs(experiment_dir)
    if not folders or not (folders[0].path / CONFIG_FILE).is_file():
        return None  # no run, or one that records no config (made by hand): no data to fit on
    config = folders[0].read_valid_config(RunConfig)
    recorded = read_start(folders[0].path).get("data_folders")
    if isinstance(recorded, dict):
        data = config.data.model_copy(update={"dir": recorded.get("dir")})
        config = config.model_copy(update={"data": data, "source_folder": recorded.get("config_folder")})
    return config


def linear_reference(
    config: Any, experiment_dir: str | Path, *, refresh: bool = False
) -> dict[str, Any] | None:
    """The linear reference of the comparison of ``config``'s runs (its data, noise and task), as
    the record in ``experiment_dir``'s reference file holds it: read where it still fits, else
    fitted and written (see the module docstring). None where the data is not texts or tag sets;
    a :class:`ReferenceError` line where the reference cannot be fitted on them."""
    if dataset_yields(config.data.name, config.data_sections()) not in TEXT_KINDS:
        return None
    dataset = data_of(config).load()
    texts = getattr(dataset, "texts", None) or {}
    if "train" not in texts or dataset.dev is None:
        missing = "no dev split to choose C on" if "train" in texts else "not the texts of its splits"
        raise ReferenceError(f"data set {dataset.name!r} keeps {missing}")
    judge = _judge(config, dataset)
    labels = _labels(dataset)
    key = _key(texts, labels, judge)
    path = Path(experiment_dir) / REFERENCE_FILE
    recorded = None if refresh else _read(path)
    reason = _unfit(recorded, key)
    if reason is None:
        return recorded
    if recorded is not None:
        logger.info("fitting the linear reference anew: %s", reason)
    record = _fit(dataset, labels, judge, config.section(FilesOptions).cache_dir)
    record = {"format": REFERENCE_FORMAT, "key": key, "labelemb": code_version(), **record}
    write_text(path, json.dumps(record, indent=1) + "\n")
    return record


def _judge(config: Any, dataset: Any) -> Judge:
    task = build_task(config, dataset)
    tags = bool(dataset.multi_label)
    selection = "dev_map_macro" if tags else (config.selection_metric or "dev_error")
    return Judge(task, tags, selection, dataset.num_classes)


def _labels(dataset: Any) -> dict[str, dict[str, torch.Tensor]]:
    """The label sets the reference is fitted on: ``trained`` (each split's labels as the runs
    read them) and, where the training labels are noisy, ``clean`` (the clean training and dev
    labels; the test split is the same clean one)."""
    trained = {split: getattr(dataset, split).labels.cpu() for split in ("train", "dev", "test")}
    sets = {"trained": trained}
    noise = getattr(dataset, "noise", None)
    if noise is not None and "train" in noise.clean:
        clean = {
            split: noise.clean[split].cpu() if split in noise.clean else trained[split] for split in trained
        }
        sets["clean"] = clean
    return sets


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """The sha256 of the source text of the modules that compute the reference (this one and
    :mod:`.linear_models`): part of the record's key, so that a change to them fits it anew and a
    change to the rest of labelemb does not."""
    digest = hashlib.sha256()
    for source in (Path(linear_models.__file__ or ""), Path(__file__)):
        digest.update(f"{source.name}\n".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _key(texts: dict[str, list[str]], labels: dict[str, dict[str, torch.Tensor]], judge: Judge) -> str:
    """The sha256 of everything the record depends on."""
    import sklearn  # lazy: scikit-learn takes seconds to import, and only a text comparison needs it

    digest = hashlib.sha256()
    options = {
        "format": REFERENCE_FORMAT,
        "code": source_digest(),
        "sklearn": sklearn.__version__,
        "tfidf": TFIDF,
        "models": [(m.key, m.grid) for m in MODELS],
        "selection": judge.selection,
        "task": type(judge.task).__name__,
        "set_apart": list(getattr(judge.task, "set_apart", ())),
    }
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    for split in sorted(texts):
        digest.update(f"\n{split} {len(texts[split])}\n".encode())
        for text in texts[split]:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
    for name, sets in sorted(labels.items()):
        for split, tensor in sorted(sets.items()):
            flat = tensor.contiguous().reshape(-1)
            digest.update(f"{name} {split} {flat.dtype} {tuple(tensor.shape)}\n".encode())
            digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def _read(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None where there is none or it cannot be read (a line says so)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("%s cannot be read (%s): fitting the linear reference anew", path, error)
        return None
    return record if isinstance(record, dict) else None


def _unfit(recorded: dict[str, Any] | None, key: str) -> str | None:
    """Why ``recorded`` is not the record of ``key`` (None where it is); the key holds the code's
    digest, so the labelemb version the record names is not compared."""
    if recorded is None:
        return "there is none yet"
    for field, value in (("format", REFERENCE_FORMAT), ("key", key)):
        if recorded.get(field) != value:
            return f"it was made with another {field} ({recorded.get(field)!r}, now {value!r})"
    if not isinstance(recorded.get("rows"), list):
        return "it holds no rows"
    return None


def _fit(
    dataset: Any, labels: dict[str, dict[str, torch.Tensor]], judge: Judge, cache_dir: str | None
) -> dict[str, Any]:
    """The features, then each model on each label set: the record's body."""
    started = time.perf_counter()
    matrices, terms = tfidf_features(dataset, cache_dir)
    record: dict[str, Any] = {
        "features": {"tfidf": json.loads(json.dumps(TFIDF))},
        "terms": terms,
        "feature_seconds": round(time.perf_counter() - started, 3),
        "selection": judge.selection,
        "scoring": judge.task.scoring.record(),
        "noisy": "clean" in labels,
        "rows": [],
    }
    for name, sets in labels.items():
        for model in MODELS:
            record["rows"].append(fit_model(model, name, matrices, sets, judge))
    return record
