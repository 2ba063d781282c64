"""One split's figures from its logits and labels, the same for every caller: the check's dev
figures (:mod:`labelemb.tasks.calibration`), ``labelemb shift``'s clean split and each condition
(:mod:`labelemb.evaluation.shift`). Their names and units are declared in :mod:`.figures`
(:data:`~.figures.SPLIT_FIGURES`: shares in percent, as the records keep them)."""

from __future__ import annotations

from torch import Tensor

from .calibration import Calibration, measure_calibration
from .figures import SCALED, SPLIT_FIGURES, in_units
from .selective import aurc, correct_predictions, max_softmax
from .temperature import fit_and_measure


def split_figures(
    logits: Tensor, labels: Tensor, temperature: float | None = None, *, fit: bool = False
) -> tuple[float | None, dict[str, float]] | None:
    """The temperature and :data:`~.figures.SPLIT_FIGURES` of ``logits`` ``(N, m)`` for ``labels``:
    the error (%), ECE (%) and NLL raw and after scaling by the temperature, and the AURC (%) of
    the raw max-softmax confidence (ties spread evenly).

    With ``fit``, the temperature is fit on these logits (the dev split's), and the figures come
    from the totals the fit computed (:func:`~.temperature.fit_and_measure`, the top-probability
    sums: no pass of their own); None where a logit is not finite (nothing to fit). Otherwise the
    given ``temperature`` (one fit on another split; None: unscaled, the scaled figures equal the
    raw ones) and :func:`~.calibration.measure_calibration`."""
    if fit:
        fitted = fit_and_measure(logits, labels)
        if fitted is None:
            return None
        temperature, raw, scaled = fitted.temperature, fitted.raw, fitted.scaled
    else:
        raw = measure_calibration(logits, labels)
        scaled = measure_calibration(logits / temperature, labels) if temperature else raw
    correct = correct_predictions(logits, labels)
    figures = {
        **_calibration_figures(raw, ""),
        **_calibration_figures(scaled, SCALED),
        **in_units(
            {"error": 1.0 - correct.double().mean().item(), "aurc": aurc(max_softmax(logits), correct)}
        ),
    }
    return temperature, {name: figures[name] for name in SPLIT_FIGURES}


def _calibration_figures(calibration: Calibration, suffix: str) -> dict[str, float]:
    return {f"ece{suffix}": calibration.ece, f"nll{suffix}": calibration.nll}
