"""Summaries of a classifier under shift: the mean corruption error (Hendrycks & Dietterich 2019)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .figures import percent_of


def mean_corruption_error(
    errors: Mapping[tuple[str, int], float], base: Mapping[tuple[str, int], float]
) -> float | None:
    """The mCE of ``errors`` against ``base``: for each corruption c, CE_c = the sum over its
    severities of the error / the same sum of the baseline's; mCE = 100 x the mean of CE_c over the
    corruptions. Both map (corruption, severity) to an error (%) and must hold the same conditions;
    the baseline scores 100. Hendrycks & Dietterich's baseline is AlexNet; here it is whichever
    model ``base`` holds. None without conditions, or where the baseline makes no error at every
    severity of a corruption (its CE has no denominator)."""
    if set(errors) != set(base):
        raise ValueError(
            "the mean corruption error compares the same conditions: "
            f"{sorted(set(errors) ^ set(base))} are in one and not the other"
        )
    totals: dict[str, list[float]] = {}
    for (name, _), error in errors.items():
        totals.setdefault(name, [0.0, 0.0])[0] += error
    for (name, _), error in base.items():
        totals[name][1] += error
    if not totals or any(base_total == 0 for _, base_total in totals.values()):
        return None
    return percent_of(math.fsum(total / base_total for total, base_total in totals.values()), len(totals))
