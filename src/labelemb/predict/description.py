"""A bundle's ``bundle.json``, checked field by field, and the files a bundle names, kept inside it.

:class:`BundleDescription` is the one place that says what each value of ``bundle.json`` may be:
a temperature is a finite number above 0 (or null), class names distinct strings, shapes lists of
positive whole numbers, file names plain names that :func:`bundle_file` resolves inside the
bundle's folder. A value outside that is refused in one line naming the file, the field and the
fix, before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..version import __version__
from .source import BUNDLE_FILE, BUNDLE_FORMAT, PredictError, read_json

#: What some of the fields must be, as a refusal says it.
PERCENT = "a percentage in [0, 100] or null"
TEMPERATURE = "a finite number above 0, or null (plain softmax)"
SHAPE = "a list of positive whole numbers"
FILE = "the name of a file in the bundle, or null"
FILES = "two names of files in the bundle (source, target), or null"
#: What a refusal of a changed or damaged bundle tells the user to do.
RE_EXPORT = "the bundle was changed or is damaged: export it again from its run (labelemb export RUN)"


class BundleDescription(BaseModel):
    """What ``bundle.json`` holds (:func:`labelemb.predict.bundle.describe` writes it)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    format: int
    #: Where and with what it was written: notes for the reader, never acted on.
    labelemb: str
    torch: str
    machine: str
    exported_from: str
    checkpoint: Literal["selected", "last"] = Field(description="selected or last")
    step: int = Field(ge=0, description="a whole number, 0 or more")
    test_error: float | None = Field(ge=0, le=100, allow_inf_nan=False, description=PERCENT)
    reads: Literal["images", "texts", "token_pairs"] = Field(description="images, texts or token_pairs")
    class_names: list[str] = Field(min_length=1, description="a list of distinct names, one per class")
    temperature: float | None = Field(gt=0, allow_inf_nan=False, description=TEMPERATURE)
    input_shape: list[int] = Field(min_length=1, description=SHAPE)
    backbone_input_shape: list[int] | None = Field(min_length=1, description=SHAPE + " or null")
    train_examples: int = Field(ge=0, description="a whole number, 0 or more")
    #: Files of the bundle, by their names inside it.
    vocabulary: str | None = Field(description=FILE)
    pair_vocabularies: list[str] | None = Field(min_length=2, max_length=2, description=FILES)
    label_representation: str | None = Field(description=FILE)
    #: The dev split's conformal scores (:mod:`.sets`); absent in bundles written before them.
    conformal: str | None = Field(None, description=FILE)
    #: The training images' range, mean and pixel scale (``start.json``'s ``inputs``); absent in
    #: bundles written before them, and for texts.
    inputs: dict[str, float] | None = Field(None, description="a mapping of names to numbers, or null")
    #: The folder of the text encoder's tokenizer where the run read one: a note (the config's
    #: ``encoder``, a name labelemb knows, decides what is loaded).
    encoder: str | None
    #: What a run on noisy labels told its method of them (``noise_rate``, ``noise_transition``),
    #: which Co-teaching and forward correction are rebuilt from; absent for other runs.
    told_noise: dict[str, float | list[list[float]]] | None = Field(
        None, description="a mapping with noise_rate and noise_transition, or null"
    )
    #: A multi-label run's (its class names are its tags, each with its own sigmoid), and the
    #: probability at which its tags are predicted; absent in bundles written before them.
    multi_label: bool = Field(False, description="true or false")
    tag_threshold: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False, description="a probability in (0, 1), or null"
    )

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"it repeats {', '.join(map(repr, repeated))}")
        return names

    @field_validator("input_shape", "backbone_input_shape")
    @classmethod
    def _positive(cls, shape: list[int] | None) -> list[int] | None:
        if shape is not None and min(shape) < 1:
            raise ValueError("a dimension is below 1")
        return shape


def read_description(folder: Path) -> BundleDescription:
    """``folder``'s ``bundle.json``: its format checked first, then every field."""
    path = bundle_file(folder, BUNDLE_FILE, "description")
    raw = read_json(path)
    if not isinstance(raw, dict) or "format" not in raw:
        raise PredictError(f"{path} is not a labelemb bundle description")
    if raw["format"] != BUNDLE_FORMAT:
        raise PredictError(
            f"{folder} is a bundle of format {raw['format']!r} (labelemb {raw.get('labelemb', '?')}); "
            f"this labelemb ({__version__}) reads format {BUNDLE_FORMAT}"
        )
    try:
        return BundleDescription.model_validate(raw)
    except ValidationError as error:
        raise PredictError(f"{path}: {_first_problem(error, raw)}; {RE_EXPORT}") from None


def _first_problem(error: ValidationError, raw: dict[str, Any]) -> str:
    """pydantic's first complaint as ``field must be what it must be (got value)``."""
    problem = error.errors()[0]
    field = str(problem["loc"][0]) if problem["loc"] else "the file"
    if problem["type"] == "missing":
        return f"{field} is missing"
    if problem["type"] == "extra_forbidden":
        return f"{field} is not a field of a bundle description"
    described = BundleDescription.model_fields[field].description
    message = str(problem["msg"])
    detail = f": {message.removeprefix('Value error, ')}" if problem["type"] == "value_error" else ""
    must = f"must be {described}" if described else f"is wrong: {message}"
    return f"{field} {must} (got {raw[field]!r}){detail}"


def bundle_file(folder: Path, name: str, field: str) -> Path:
    """The file ``name`` of the bundle ``folder`` (its ``field``), resolved through symbolic links;
    a :class:`PredictError` if it lies outside the folder or is not there."""
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise PredictError(
            f"{folder}: its {field} {name!r} lies outside the bundle ({path}); a bundle's files "
            f"must be inside its folder: {RE_EXPORT}"
        )
    if not path.is_file():
        raise PredictError(f"{folder}: its {field} {name!r} is not a file in the bundle; {RE_EXPORT}")
    return path
