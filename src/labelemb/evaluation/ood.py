"""The out-of-distribution sets a run's config names (``ood:``), read as its network reads inputs.

A data set by name gives the images of one of its splits (they must have the run's shape: a set
of another size is refused, not resized); a file gives what ``labelemb predict --input`` reads
(a table, an ``.npz``, an image folder; for a text run also any file of one text a line, such as
``tst2013.en``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .. import data
from ..config import OodSetConfig
from ..data.base import DataError
from ..data.files.paths import find_file
from ..data.registry import DataRequest, dataset_key
from ..data.text.corpus import read_lines
from ..predict.inputs import image_shape
from ..predict.reading import TABLE_FORMATS, read_rows
from ..predict.source import PredictError, Trained


@dataclass
class OodInputs:
    """One out-of-distribution set as the network reads it: ``items`` (what
    :meth:`~labelemb.predict.Predictor.logits` takes), where it came from, and a digest of its content."""

    label: str
    source: str
    items: Any
    count: int
    digest: str


def read_ood_set(entry: OodSetConfig, trained: Trained, request: DataRequest) -> OodInputs:
    """The inputs of ``entry`` for the run ``trained`` (``request``: where the run's data files are
    looked for); a :class:`PredictError` naming the set and the fix if they cannot be read or do
    not fit the network."""
    if entry.data is not None:
        inputs, source = _named_set(entry, trained, request)
    else:
        inputs, source = _files(entry, trained, request)
    if entry.limit is not None:
        inputs = inputs[: entry.limit]
    if len(inputs) == 0:
        raise PredictError(f"ood set {entry.label!r} ({source}) holds no inputs")
    return OodInputs(entry.label, source, inputs, len(inputs), _digest(inputs, trained.yields))


def _named_set(entry: OodSetConfig, trained: Trained, request: DataRequest) -> tuple[Any, str]:
    """A data set's split, as a batch of images of the run's shape."""
    if trained.yields != "images":
        raise PredictError(
            f"ood set {entry.label!r}: a data set by name serves image runs; this run reads "
            f"{trained.yields}: give its texts as a file (ood: [{{path: FILE}}])"
        )
    name = str(entry.data)
    try:
        key = dataset_key(name)
        # The set's own defaults: the run's option sections are its own data set's.
        dataset = data.load(key, replace(request, sections={}, max_train_pairs=None, progress=False))
    except (DataError, ValueError) as error:
        raise PredictError(f"ood set {entry.label!r}: {error}") from None
    split = getattr(dataset, entry.split, None)
    if split is None:
        raise PredictError(f"ood set {entry.label!r}: data set {name} has no {entry.split} split")
    shape, wanted = tuple(split.inputs.shape[1:]), image_shape(trained)
    if getattr(dataset, "yields", "images") != "images" or shape != wanted:
        raise PredictError(
            f"ood set {entry.label!r}: {name}'s inputs are {shape}, but the network reads images of "
            f"{wanted} (channels, height, width): name a data set of that shape, or give image files "
            "(ood: [{path: FOLDER}]), which are resized as predict resizes them"
        )
    return split.inputs, f"data set {key}, {entry.split} split"


def _files(entry: OodSetConfig, trained: Trained, request: DataRequest) -> tuple[Any, str]:
    """A file's inputs, found as a run's data files are."""
    try:
        path = find_file(str(entry.path), request, f"ood set {entry.label!r}: file")
    except DataError as error:
        raise PredictError(str(error).replace("in data.files", "in ood")) from None
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    a_table = bool(suffixes) and suffixes[-1] in TABLE_FORMATS
    if trained.yields == "texts" and not path.is_dir() and not a_table:
        try:
            return read_lines(path), str(path)  # one text a line, whatever the file is called (.en)
        except DataError as error:
            raise PredictError(f"ood set {entry.label!r}: {error}") from None
    try:
        return read_rows(path, trained).items, str(path)
    except (PredictError, DataError) as error:
        raise PredictError(f"ood set {entry.label!r}: {error}") from None


def _digest(inputs: Any, reads: str) -> str:
    """A SHA-256 of what the network will read: a batch's bytes; texts in order; image files' bytes."""
    hasher = hashlib.sha256()
    if isinstance(inputs, torch.Tensor):
        hasher.update(str((tuple(inputs.shape), inputs.dtype)).encode())
        hasher.update(inputs.contiguous().cpu().numpy().tobytes())
        return hasher.hexdigest()
    for item in inputs:
        if reads == "texts":
            hasher.update(str(item).encode("utf-8"))
        elif isinstance(item, str):
            hasher.update(Path(item).read_bytes() if Path(item).is_file() else item.encode("utf-8"))
        else:
            hasher.update(torch.as_tensor(item).numpy().tobytes())
        hasher.update(b"\0")
    return hasher.hexdigest()
