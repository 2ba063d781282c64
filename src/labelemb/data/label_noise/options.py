"""The config's ``noise:`` section: which training labels are made wrong, how, and with which seed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: What each kind of noise reads besides ``seed`` and ``dev``.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "symmetric": ("rate", "include_self"),
    "pairflip": ("rate",),
    "matrix": ("matrix",),
    "instance": ("rate", "std"),
    "file": ("labels",),
    "remove_tags": ("rate",),
}
#: The keys some kind reads, and their defaults (a key another kind reads must stay at its default).
OPTIONAL_DEFAULTS = {"rate": None, "include_self": False, "matrix": None, "labels": None, "std": 0.1}


class NoiseConfig(BaseModel):
    """Noise on the training labels (and the dev split's, unless ``dev: clean``); the test split
    is always judged on its clean labels.

    - ``symmetric``: ``rate`` of the labels flipped to another class drawn uniformly
      (``include_self: true``: redrawn from all classes, the true one included);
    - ``pairflip``: ``rate`` of each class's labels flipped to the next class (Co-teaching's);
    - ``matrix``: each label drawn from its class's row of a transition matrix file
      (``.npy``, or ``.csv`` / ``.txt`` with one row per line);
    - ``instance``: instance-dependent noise at a mean ``rate`` (Xia et al. 2020's generator);
    - ``file``: fixed noisy labels, one per row of the data set's training file, in its order
      (``.npy``, or one label per line);
    - ``remove_tags`` (tag sets only): ``rate`` of the rows each lose one of their tags, drawn
      uniformly (:mod:`.tags`); the clean tag sets are kept as the truth.

    ``seed`` draws the noise, apart from the run's seed: every method and seed of a comparison
    trains on the same wrong labels.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["symmetric", "pairflip", "matrix", "instance", "file", "remove_tags"]
    #: The share of labels flipped (symmetric, pairflip), the mean flip rate (instance), or the
    #: share of rows that lose a tag (remove_tags): [0, 1).
    #: Its description is what a refusal of a rate out of range says it is.
    rate: float | None = Field(None, ge=0, lt=1, description="the share of training labels made wrong")
    #: symmetric only: whether a redrawn label may land on the true class (then ``rate (m-1)/m``
    #: of the labels end up wrong).
    include_self: bool = False
    #: matrix only: the transition matrix file, ``m x m``, row i = P(label | true class i).
    matrix: str | None = None
    #: file only: the noisy labels file.
    labels: str | None = None
    #: instance only: the standard deviation of the per-example flip rates around ``rate``.
    std: float = Field(0.1, gt=0)
    #: The noise's own seed (not the run's).
    seed: int = 0
    #: noisy: the dev split's labels are noisy as train's are (as a user's dev would be); clean:
    #: dev keeps its true labels (early stopping, selection and everything fit on dev see them).
    dev: Literal["noisy", "clean"] = "noisy"

    @model_validator(mode="after")
    def _keys_of_its_kind(self) -> NoiseConfig:
        reads = KIND_KEYS[self.kind]
        for key, default in OPTIONAL_DEFAULTS.items():
            if key not in reads and getattr(self, key) != default:
                readers = [kind for kind, keys in KIND_KEYS.items() if key in keys]
                raise ValueError(
                    f"noise.{key} is read by kind {' or '.join(readers)}, not by {self.kind}: drop it"
                )
        needed = {"rate", "matrix", "labels"} & set(reads)
        for key in sorted(needed):
            if getattr(self, key) is None:
                example = {"rate": "0.2", "matrix": "flips.npy", "labels": "noisy-labels.npy"}[key]
                raise ValueError(f"noise kind {self.kind} needs noise.{key} (e.g. noise.{key}: {example})")
        return self
