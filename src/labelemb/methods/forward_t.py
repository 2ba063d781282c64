"""Forward loss correction (Patrini et al. 2017): cross-entropy of the noisy label against ``p T``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .abilities import EpochState, PredictsNoisyLabels, Stackable
from .base import LinearOutputMethod, MethodOutput, Rows, gold
from .host_count import HostCount
from .processes import is_distributed
from .registry import register

#: How far a transition matrix's row sums may be from 1 (a CSV of rounded numbers); rows are then
#: divided by their sums.
ROW_SUM_TOLERANCE = 1e-3


@register("forward_t")
class ForwardCorrection(Stackable, EpochState, PredictsNoisyLabels, LinearOutputMethod):
    """Forward loss correction, Patrini et al. (CVPR 2017), "Making Deep Neural Networks Robust to
    Label Noise: a Loss Correction Approach", Section 3 (forward correction) and the paper's
    estimator of T from anchor points.

    With ``p = softmax(W h + b)`` the network's estimate of the clean class and ``T`` the
    row-stochastic noise matrix, ``T[i, j] = P(noisy label j | clean class i)``, the loss of a row
    with noisy label ``y~`` is the cross-entropy of the noisy label under the noisy class
    probabilities ``T^T p``::

        L = -log((T^T p(x))_{y~}) = -log(sum_i p_i(x) T[i, y~])

    Prediction is ``p`` (uncorrected): the network learns the clean classes. Where the dev labels
    are noisy, the check is selected by the error of the predicted *noisy* label, ``argmax T^T p``,
    against them (:class:`~labelemb.methods.abilities.PredictsNoisyLabels`): ``p``'s own error
    against noisy labels cannot tell a right ``p`` from a wrong one where the wrong label is a
    class's majority. ``T`` is, in order:

    1. ``transition``: a ``.npy`` or ``.csv`` file of a ``K x K`` matrix (non-negative, each row
       summing to 1 within 1e-3, then renormalised);
    2. ``noise_transition``: what the run tells when labelemb made the training labels' noise
       (the matrix the noise was drawn from, else the one the labels show; a row of zeros there,
       a class with no training example, is taken as the identity row);
    3. estimated (``estimate=True``, or neither of the above): plain cross-entropy for
       ``warmup_epochs`` epochs (default: half of the run's ``epochs``), then, from the network's
       own anchor points, for each class ``i`` the training example of largest ``p_i`` and row
       ``i`` of ``T`` that example's ``p``, and the corrected loss afterwards.

    The estimate streams on the device: during the last warm-up epoch each training batch updates,
    per class, the largest ``p_i`` seen and the ``p`` row where it was reached (buffers, so a
    checkpoint resumes it mid-epoch); :meth:`on_epoch_end` turns them into ``T`` (a class that no
    row reached keeps its identity row). Under torchrun the processes' anchors are combined (the
    largest ``p_i`` over all of them). The estimate is only as good as the warm-up network: one
    that is still near chance gives rows of ``T`` near uniform, under which ``p T`` hardly depends
    on ``p`` and the corrected loss gives almost no gradient; give the warm-up enough epochs.

    Departures from their code (``giorgiop/loss-correction``, ``noise.py``, ``loss.py``,
    ``models.py``'s ``NoiseEstimator``): the anchor is the example of largest ``p_i`` (their
    CIFAR-100 setting); on every other data set they take the largest ``p_i`` below its 97th
    percentile over the training set (``filter_outlier``), which a streaming estimate cannot give
    without keeping every ``p``. They estimate with a fully trained standard network, in
    inference mode, over the whole training set, and then train a fresh network with the
    corrected loss; here the same network goes on after its warm-up, and the anchors come from
    the training batches of its last warm-up epoch (training mode, weights moving within the
    epoch). They clip ``p`` to ``[1e-7, 1 - 1e-7]`` before ``log(p T)``; here ``p T`` is only kept
    above the dtype's smallest positive number. They keep the weights of the lowest corrected loss
    on the noisy validation split; here the check of the lowest error of ``argmax T^T p`` there
    (the harness selects every method by a dev error).
    """

    serves = frozenset({"class"})
    cannot_serve = {
        "token": "its transition matrix is K x K: V x V over a vocabulary (10 GB at 50,000 words)",
        "tags": (
            "its transition matrix moves probability between mutually exclusive classes (a clean "
            "class i read as the noisy label j); a tag set's noise turns tags on and off, which it "
            "does not model"
        ),
    }
    # Nothing is searched: T is given or estimated, and warmup_epochs matters only when it is
    # estimated (the noise a comparison generates tells T, and then it does nothing).

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        transition: str | Path | None = None,
        noise_transition: list[list[float]] | None = None,
        estimate: bool = False,
        warmup_epochs: int | None = None,
        epochs: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        if estimate and transition is not None:
            raise ValueError(
                "forward_t: estimate=True estimates T, and transition= gives it; set one of the two"
            )
        given = None
        if transition is not None:
            given = checked_transition(
                read_matrix(Path(transition).expanduser()), num_classes, f"transition {transition}"
            )
        elif noise_transition is not None and not estimate:
            given = checked_transition(told_matrix(noise_transition), num_classes, "noise_transition")
        self.estimating = given is None
        self.warmup_epochs = _warmup_epochs(warmup_epochs, epochs) if self.estimating else 0
        self.register_buffer("transition_matrix", torch.eye(num_classes) if given is None else given)
        if self.estimating:
            # p_i >= 0, so any row beats the -1 a class starts at.
            self.register_buffer("anchor_score", torch.full((num_classes,), -1.0))
            self.register_buffer("anchor_rows", torch.zeros(num_classes, num_classes))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self._epoch = HostCount()

    def corrects(self, epochs_done: int) -> bool:
        """Whether the loss is corrected after ``epochs_done`` epochs (always, for a given ``T``)."""
        return epochs_done >= self.warmup_epochs

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        log_p = F.log_softmax(logits, dim=-1)
        ce = -gold(log_p, rows.label)
        epochs_done = self._epoch.read(self.epoch)
        if self.corrects(epochs_done):
            forward = -gold(noisy_log_probabilities(log_p, self.transition_matrix), rows.label)
        else:
            forward = ce
        if self.training and self.estimating and epochs_done == self.warmup_epochs - 1:
            self._track_anchors(log_p.detach().exp(), rows.weight)
        ce_mean, forward_mean = rows.mean(ce), rows.mean(forward)
        return MethodOutput(forward_mean, logits, {"ce": ce_mean, "forward": forward_mean})

    @torch.no_grad()
    def _track_anchors(self, p: Tensor, weight: Tensor | None) -> None:
        """Keep, per class ``i``, the largest ``p_i`` seen so far and the row of ``p`` that reached it."""
        if p.shape[-2] == 0:  # an empty batch has no anchor to offer
            return
        scores = p if weight is None else p.masked_fill(weight.unsqueeze(-1) == 0, -1.0)
        best, where = scores.max(dim=-2)  # (..., K): per class, its best row of the batch
        anchor = p.gather(-2, where.unsqueeze(-1).expand(*where.shape, self.num_classes))
        better = best.to(self.anchor_score.dtype) > self.anchor_score
        self.anchor_rows.copy_(
            torch.where(better.unsqueeze(-1), anchor.to(self.anchor_rows.dtype), self.anchor_rows)
        )
        self.anchor_score.copy_(torch.where(better, best.to(self.anchor_score.dtype), self.anchor_score))

    @torch.no_grad()
    def on_epoch_end(self) -> None:
        """Count the epoch; at the end of the warm-up, make ``T`` from the anchors."""
        self._epoch.add_one(self.epoch)
        if self.estimating and self._epoch.read(self.epoch) == self.warmup_epochs:
            self.transition_matrix.copy_(self._estimate())

    def _estimate(self) -> Tensor:
        """``T`` from the anchors: row ``i`` the anchor of class ``i``'s ``p``, renormalised; the
        identity row for a class no row reached."""
        score, rows = self.anchor_score, self.anchor_rows
        if is_distributed():
            # Every process's best; where two processes tie, their rows are averaged.
            best = score.clone()
            torch.distributed.all_reduce(best, op=torch.distributed.ReduceOp.MAX)
            mine = (score == best).to(rows.dtype)
            packed = torch.cat([rows * mine.unsqueeze(-1), mine.unsqueeze(-1)], dim=-1)
            torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.SUM)
            score, rows = best, packed[..., :-1] / packed[..., -1:].clamp(min=1.0)
        sums = rows.sum(-1, keepdim=True)
        reached = (score >= 0).unsqueeze(-1) & (sums > 0)
        identity = torch.eye(self.num_classes, dtype=rows.dtype, device=rows.device).expand_as(rows)
        return torch.where(reached, rows / sums.clamp(min=torch.finfo(rows.dtype).tiny), identity)

    def noisy_label_logits(self, logits: Tensor) -> Tensor:
        """``log(T^T p)``: the noisy label each row is predicted to carry under ``T`` (the identity
        before an estimated ``T`` is made, so the clean prediction itself)."""
        transition = self.transition_matrix.to(logits.device)
        return noisy_log_probabilities(F.log_softmax(logits.float(), dim=-1), transition)

    def artifacts(self) -> dict[str, Tensor]:
        """The transition matrix ``T`` in use (given, or estimated once the warm-up is over)."""
        return {"transition": self.transition_matrix.detach().clone()}


def noisy_log_probabilities(log_p: Tensor, transition: Tensor) -> Tensor:
    """``log(p T)``, each row's log-probability of every noisy label: ``(..., N, K)`` from the clean
    ``log_p`` and ``T`` (``(K, K)``, or ``(S, K, K)`` for stacked seeds)."""
    noisy = torch.matmul(log_p.exp(), transition.to(log_p.dtype))
    return noisy.clamp(min=torch.finfo(noisy.dtype).tiny).log()


def read_matrix(path: Path) -> np.ndarray:
    """The matrix a ``.npy`` (no pickles) or ``.csv`` (commas) file holds; one line on failure."""
    if path.suffix not in (".npy", ".csv"):
        raise ValueError(
            f"transition {path}: a transition matrix is a .npy or .csv file, "
            f"not {path.suffix or 'no suffix'!r}"
        )
    if not path.is_file():
        raise ValueError(f"transition {path}: no such file; give the path of a .npy or .csv K x K matrix")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, OSError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"transition {path}: cannot read a matrix from it ({first})") from None


def told_matrix(rows: list[list[float]]) -> np.ndarray:
    """The run's matrix, a row of zeros (a class with no training example, in the matrix the
    labels show) made the identity row: nothing says how such a class's labels are flipped."""
    try:
        values = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError):
        return np.asarray(rows, dtype=object)  # checked_transition names the problem
    if values.ndim == 2 and values.shape[0] == values.shape[1]:
        empty = ~values.any(axis=1)
        values[empty] = np.eye(len(values))[empty]
    return values


def checked_transition(matrix: np.ndarray, num_classes: int, where: str) -> Tensor:
    """``matrix`` as a float32 ``(K, K)`` tensor, its rows renormalised, if it is a transition
    matrix for ``num_classes`` classes: square, ``K x K``, finite, non-negative, each row summing to
    1 (within :data:`ROW_SUM_TOLERANCE`). Otherwise a ValueError naming ``where`` and the problem."""
    try:
        values = np.asarray(matrix, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(
            f"{where}: a transition matrix is a K x K table of numbers (rows of equal length)"
        ) from None
    k = num_classes
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"{where}: a transition matrix is square, got shape {list(values.shape)}")
    if values.shape[0] != k:
        raise ValueError(
            f"{where}: the data has {k} classes, so T must be {k} x {k}, "
            f"got {values.shape[0]} x {values.shape[1]}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: T holds a value that is not finite (NaN or inf)")
    if (values < 0).any():
        i, j = np.argwhere(values < 0)[0]
        raise ValueError(f"{where}: T[i, j] are probabilities, but T[{i}, {j}] = {values[i, j]} is negative")
    sums = values.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{where}: each row of T, P(noisy label | clean class i), sums to 1, "
            f"but row {i} sums to {sums[i]:.6g}"
        )
    return torch.from_numpy(values / sums[:, None]).float()


def _warmup_epochs(warmup_epochs: int | None, epochs: int | None) -> int:
    """The epochs of plain cross-entropy before ``T`` is estimated: as given, else half the run's."""
    if warmup_epochs is None:
        if epochs is None:
            raise ValueError(
                "forward_t estimates T after a warm-up: set warmup_epochs=... (or epochs, of which it "
                "takes half), or give T as transition=PATH"
            )
        return max(1, int(epochs) // 2)
    if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 1:
        raise ValueError(
            f"warmup_epochs (of plain cross-entropy before T is estimated) must be >= 1, got {warmup_epochs}"
        )
    return int(warmup_epochs)
