"""The config's ``clean:`` section: clean the training labels as a step of the run, before it trains.

``labelemb train`` and ``labelemb compare`` first make the list of likely wrong labels that
``labelemb label-issues`` makes, with these options (the same names: ``method``, ``folds``,
``seed``, ``rank_by``, ``filter``, ``dynamics``), then train every run on the training split
cleaned by it, as ``data.clean`` does with a list made beforehand (``action``). The step itself is
:mod:`labelemb.label_issues.clean_step`; here are only its keys, checked when the config is read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: What a config that names both ways of cleaning is told.
BOTH = (
    "clean: makes the list of wrong labels and data.clean names one made before: give one of them "
    "(drop data.clean to have this run make the list, or drop clean: to use that list)"
)


class CleanStep(BaseModel):
    """``clean:``: make the list of wrong labels (K-fold cross-fitted runs of ``method``, read by
    cleanlab's detectors, as ``labelemb label-issues`` does), then train on the training split
    without the rows it flags (``action: remove``) or with their suggested label (``relabel``).

    ``rank_by`` orders the list (its ``score`` column); the rows cleaned are those ``filter``
    flags. The list is kept in the experiment's folder and read back by a later run of the same
    data, noise and options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The method the fold models train with (one list for every method compared).
    method: str = "onehot"
    #: K, the folds: each row is scored by a model that did not train on it.
    folds: int = Field(5, ge=2)
    #: The folds' and the fold runs' seed; null: the config's ``seed``.
    seed: int | None = None
    #: The detector the list is ranked by (label-issues' ``--rank-by``).
    rank_by: str = "self_confidence"
    #: cleanlab's filter that flags the rows cleaned (label-issues' ``--filter``).
    filter: str = "prune_by_noise_rate"
    #: Also train one run on every row and score rows by its training dynamics (``rank_by: aum``).
    dynamics: bool = False
    #: remove: train without the flagged rows; relabel: give each its suggested label.
    action: Literal["remove", "relabel"] = "remove"


__all__ = ["BOTH", "CleanStep"]
