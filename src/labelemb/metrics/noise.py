"""What training on noisy labels did: functions of a network's logits on its training examples,
their noisy labels (trained on) and their clean ones.

- **memorisation** (Arpit et al. 2017; Liu et al. 2020, Fig. 1): of the examples whose label is
  wrong, the share predicted as that wrong label (fitted) and as their true class;
- **finding the wrong labels** (Han et al. 2018's small-loss trick, confident learning): how well an
  example's loss against its noisy label (and its margin) tells the wrongly labelled examples from
  the others, as an AUROC (scikit-learn's), 50 % being chance;
- **disputed test labels** (Northcutt et al. 2021): where the test examples whose labels people
  disputed rank among a network's least confident predictions.

Every share is in percent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor

from .figures import in_units, percent_of


def memorisation_figures(logits: Tensor, noisy: Tensor, clean: Tensor) -> dict[str, float]:
    """``memorised``: % of the wrongly labelled examples predicted as their (wrong) label;
    ``flipped_correct``: % of them predicted as their true class; ``clean_fit``: % of the rightly
    labelled ones predicted as their label. NaN where a group is empty."""
    predicted = logits.argmax(dim=-1).cpu()
    noisy, clean = noisy.cpu(), clean.cpu()
    flipped = noisy != clean
    return in_units(
        {
            "memorised": _fraction(predicted[flipped] == noisy[flipped]),
            "flipped_correct": _fraction(predicted[flipped] == clean[flipped]),
            "clean_fit": _fraction(predicted[~flipped] == noisy[~flipped]),
        }
    )


def detection_figures(logits: Tensor, noisy: Tensor, clean: Tensor) -> dict[str, float]:
    """``detect_auroc_loss``: AUROC (%) of the cross-entropy against the noisy label as a score for
    "this label is wrong"; ``detect_auroc_margin``: the same for the margin ``max_{j != y} z_j - z_y``
    (higher where the network prefers another class). NaN where all labels are right or all wrong."""
    logits, noisy, clean = logits.float().cpu(), noisy.cpu(), clean.cpu()
    flipped = (noisy != clean).numpy()
    if flipped.all() or not flipped.any():
        return {"detect_auroc_loss": float("nan"), "detect_auroc_margin": float("nan")}
    loss = F.cross_entropy(logits, noisy, reduction="none")
    given = logits.gather(1, noisy[:, None]).squeeze(1)
    others = logits.scatter(1, noisy[:, None], float("-inf")).amax(dim=1)
    return in_units(
        {
            "detect_auroc_loss": float(roc_auc_score(flipped, loss.numpy())),
            "detect_auroc_margin": float(roc_auc_score(flipped, (others - given).numpy())),
        }
    )


def _fraction(hits: Tensor) -> float:
    return float(hits.float().mean()) if hits.numel() else float("nan")


def disputed_figures(logits: Tensor, disputed: Tensor) -> dict[str, float]:
    """Where the test examples whose labels people disputed (``disputed``: their row indices) fall
    among a network's least confident predictions (the max softmax; Northcutt et al. 2021 found
    them by confident learning). ``median_rank``: the median of their ranks among the test
    predictions by rising confidence, in percent (0: the least confident, 50: no better than
    chance); ``within_1`` / ``within_5`` / ``within_10``: the share of them among the 1 / 5 / 10 %
    least confident; ``auroc``: the AUROC (%) of one minus the confidence for telling them from the
    other test examples. Ties are ranked in row order."""
    confidence = F.softmax(logits.float().cpu(), dim=-1).amax(dim=-1)
    count = confidence.numel()
    order = torch.argsort(confidence, stable=True)
    rank = torch.empty(count, dtype=torch.float64)
    rank[order] = torch.arange(count, dtype=torch.float64)
    percentile = percent_of(rank[disputed.cpu()], count)
    chosen = torch.zeros(count, dtype=torch.bool)
    chosen[disputed.cpu()] = True
    figures = {"median_rank": float(percentile.quantile(0.5))}
    for share in (1, 5, 10):
        figures[f"within_{share}"] = 100.0 * _fraction(percentile < share)
    figures["auroc"] = 100.0 * float(roc_auc_score(chosen.numpy(), (1.0 - confidence).numpy()))
    return figures
