"""The models of the linear reference (:mod:`.linear_reference`): TF-IDF features, a linear SVM
and logistic regression from scikit-learn, each fitted at every C of its grid and the one best on
dev judged on test by the runs' own figures (:class:`Judge`)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import DataError
from ..data.text.options import TfidfOptions
from ..data.text.tfidf import tfidf_matrices
from ..metrics.calibration import measure_calibration
from ..metrics.multi_label import dev_threshold
from ..tasks.text_classification import macro_f1

#: The TF-IDF the models read, :class:`TfidfOptions`' defaults: words and word pairs, 1 + log tf,
#: the terms of two or more training texts (scikit-learn's other defaults).
TFIDF: dict[str, Any] = TfidfOptions().model_dump()
#: The score of a class no training row carries (a log-probability or margin nothing trained is below).
ABSENT = -1e4


class ReferenceError(ValueError):
    """The reference cannot be fitted on this data; the message says why, in one line."""


@dataclass(frozen=True)
class LinearModel:
    """One model of the reference: its ``key``, its name in a table, the ``C`` values it tries
    (scikit-learn's inverse regularisation: larger fits the training labels more closely) and
    whether it gives probabilities (judged for calibration)."""

    key: str
    name: str
    grid: tuple[float, ...]
    probabilities: bool

    def make(self, c: float, tags: bool) -> Any:
        """The scikit-learn estimator at ``C = c`` (one-vs-rest for tag sets)."""
        # lazy: scikit-learn takes seconds to import and only a text comparison needs it
        from sklearn.linear_model import LogisticRegression  # lazy: as above
        from sklearn.multiclass import OneVsRestClassifier  # lazy: as above
        from sklearn.svm import LinearSVC  # lazy: as above

        if self.key == "svm":
            model = LinearSVC(C=c)
        elif tags:
            model = LogisticRegression(C=c, solver="liblinear")
        else:
            # sag, not lbfgs: over debian-sections' 294,127 terms x 53 classes lbfgs spent 2.7
            # CPU-s an iteration (most in L-BFGS-B's own update of 15.6M weights), sag 1.5 s an
            # epoch and 23-50 epochs to its tolerance at C 3-30; each C starts from the last one's
            # weights (warm_start: the grid rises).
            model = LogisticRegression(
                C=c, solver="sag", max_iter=SAG_EPOCHS, warm_start=True, random_state=0
            )
        return OneVsRestClassifier(model) if tags else model

    def warm(self, tags: bool) -> bool:
        """Whether each C of the grid starts from the previous C's fit (one estimator refitted)."""
        return self.key == "logreg" and not tags


#: The epochs logistic regression's sag may take at one C (it stops at its tolerance, 1e-4, before).
SAG_EPOCHS = 300
#: The models of the reference and their grids of C (rising: a warm start goes up the grid).
MODELS = (
    LinearModel("svm", "linear SVM", (0.1, 0.3, 1.0, 3.0), probabilities=False),
    LinearModel("logreg", "logistic regression", (3.0, 10.0, 30.0, 100.0), probabilities=True),
)


@dataclass
class Judge:
    """How the reference is judged on one data set: single-label texts by error and macro-F1 (and
    calibration), tag sets by the task's figures; ``selection`` the dev figure C is chosen by."""

    task: Any
    tags: bool
    selection: str
    #: The classes (tags) the scores cover, in id order.
    classes: int

    @property
    def higher_is_better(self) -> bool:
        return self.selection != "dev_error"

    def dev_figure(self, scores: np.ndarray, labels: torch.Tensor) -> float:
        """The figure C is chosen by, on dev."""
        logits = torch.from_numpy(np.asarray(scores, dtype=np.float64))
        if self.tags:
            return self.task.split_figures("dev", logits, labels, 0.5)["dev_map_macro"]
        predictions = logits.argmax(-1)
        if self.selection == "dev_macro_f1":
            return macro_f1(predictions, labels, logits.shape[-1])
        return 100.0 * float((predictions != labels).double().mean())

    def test_figures(
        self, model: LinearModel, dev: tuple[np.ndarray, torch.Tensor], test: tuple[np.ndarray, torch.Tensor]
    ) -> dict[str, float]:
        """The test figures of one fitted model from its dev and test scores (log-probabilities for
        a model that gives probabilities; tag scores are logits)."""
        logits = torch.from_numpy(np.asarray(test[0], dtype=np.float64))
        labels = test[1]
        if self.tags:
            dev_logits = torch.from_numpy(np.asarray(dev[0], dtype=np.float64))
            threshold = dev_threshold(torch.sigmoid(dev_logits), dev[1])
            figures = self.task.split_figures("test", logits, labels, threshold)
            figures["tag_threshold"] = threshold
            # A margin is no probability: its sigmoid's calibration says nothing of the SVM.
            return figures if model.probabilities else {k: v for k, v in figures.items() if "ece" not in k}
        predictions = logits.argmax(-1)
        figures = {
            "test_error": 100.0 * float((predictions != labels).double().mean()),
            "test_macro_f1": macro_f1(predictions, labels, logits.shape[-1]),
        }
        if model.probabilities:
            calibration = measure_calibration(logits, labels)
            figures.update({"test_ece": calibration.ece, "test_nll": calibration.nll})
        return figures


def tfidf_features(dataset: Any, cache_dir: str | None = None) -> tuple[dict[str, Any], int]:
    """Each split's TF-IDF (scipy CSR, float32) with :class:`TfidfOptions`' defaults (:data:`TFIDF`),
    fitted on the training texts alone, from the TF-IDF cache the ``tfidf`` model reads too
    (:func:`~labelemb.data.text.tfidf.tfidf_matrices`), and its number of terms; a
    :class:`ReferenceError` where the training texts give no term."""
    try:
        matrices = tfidf_matrices(dataset, TfidfOptions(), cache_dir, progress=False)
    except DataError:
        raise ReferenceError(
            "TF-IDF of the training texts has no term (words of two or more letters in at least "
            f"{TFIDF['min_df']} texts)"
        ) from None
    return {"train": matrices.train, "dev": matrices.dev, "test": matrices.test}, matrices.vectorizer.width


def fit_model(
    model: LinearModel,
    labels_name: str,
    matrices: dict[str, Any],
    labels: dict[str, torch.Tensor],
    judge: Judge,
) -> dict[str, Any]:
    """``model`` at each C of its grid on ``labels``; the one best on dev, judged on test."""
    started = time.perf_counter()
    targets = labels["train"].numpy()
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    dev_figures, fit_seconds = {}, {}
    fitted = None
    for c in model.grid:
        fit_started = time.perf_counter()
        previous = fitted if model.warm(judge.tags) else None
        fitted = _fitted(model, c, judge.tags, matrices["train"], targets, previous)
        fit_seconds[f"{c:g}"] = round(time.perf_counter() - fit_started, 3)
        dev_scores = _scores(fitted, model, judge.tags, matrices["dev"], judge.classes)
        figure = judge.dev_figure(dev_scores, labels["dev"])
        dev_figures[f"{c:g}"] = figure
        if best is None or (figure > best[0] if judge.higher_is_better else figure < best[0]):
            test_scores = _scores(fitted, model, judge.tags, matrices["test"], judge.classes)
            best = (figure, c, dev_scores, test_scores)
    assert best is not None
    _, c, dev_scores, test_scores = best
    figures = judge.test_figures(model, (dev_scores, labels["dev"]), (test_scores, labels["test"]))
    return {
        "model": model.key,
        "name": model.name,
        "labels": labels_name,
        "C": c,
        "dev": dev_figures,
        "figures": {key: float(value) for key, value in figures.items()},
        "seconds": round(time.perf_counter() - started, 3),
        "fit_seconds": fit_seconds,
    }


def _fitted(
    model: LinearModel, c: float, tags: bool, features: Any, targets: np.ndarray, previous: Any = None
) -> Any:
    """``model`` at ``C = c`` fitted (``previous``, the fit at the grid's last C, refitted from its
    weights where given); scikit-learn's warnings (an iteration cap reached, a tag carried by every
    row) are its own business here: the dev figure judges the fit."""
    estimator = model.make(c, tags) if previous is None else previous.set_params(C=c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(features, targets)


def _scores(fitted: Any, model: LinearModel, tags: bool, features: Any, classes: int) -> np.ndarray:
    """A fitted model's scores of ``features``, ``(N, classes)``: tag logits (the margin, or the
    log-odds), class log-probabilities of a model that gives them, else its margins. A class no
    training row carries gets no score a trained class could lose to."""
    if tags:
        return np.asarray(fitted.decision_function(features), dtype=np.float64).reshape(-1, classes)
    if model.probabilities:
        scores = np.asarray(fitted.predict_log_proba(features), dtype=np.float64)
    else:
        scores = np.asarray(fitted.decision_function(features), dtype=np.float64)
        if scores.ndim == 1:  # two classes: scikit-learn gives the second's margin alone
            scores = np.stack([-scores, scores], axis=1)
    full = np.full((scores.shape[0], classes), ABSENT, dtype=np.float64)
    full[:, np.asarray(fitted.classes_, dtype=np.int64)] = np.maximum(scores, ABSENT)
    return full
