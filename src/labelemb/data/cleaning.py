"""Clean, then train: a data set's training split cleaned by a list of wrong labels.

The config's ``data.clean`` section (:class:`CleanOptions`) names a ``label_issues.csv`` (or
``.jsonl``) that ``labelemb label-issues`` wrote and what to do with the rows it flags: ``remove``
leaves them out of the training split, ``relabel`` gives each the label the list suggests. Dev and
test are never touched.

The list is data: its cells are read as text and numbers, and nothing it names is opened, imported
or run. Its rows are matched to the training split by the file and row number each names, as the
list names them (never by position), after the run's ``noise:`` (a list made on noisy labels
cleans those labels). A list that does not fit the training split row for row, or gives a row
another label than the split's, was made for other data, another split or other labels, and is
refused in one line.

The run records what the cleaning did in its summary (``data.clean``: the list's sha256, the rows
flagged, removed or relabelled) and folds the list's digest into its data fingerprint, so that a
finished run is never read back for a list that has changed since.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import PrivateAttr

from ..options import Options, OptionsError
from .base import DataError, Dataset, Split
from .files.paths import find_file
from .label_noise import NoiseConfig, add_label_noise, realised_matrix
from .origins import RowOrigins
from .registry import DataRequest

#: The list's columns that cleaning reads (``labelemb label-issues`` writes more).
NEEDED = ("file", "row", "given_label", "suggested_label", "flagged")
#: The list formats ``labelemb label-issues`` writes.
SUFFIXES = (".csv", ".jsonl")
#: The config key the list is named by, for the errors.
KEY = "data.clean.issues"
#: What a list that cannot be read is told to do.
WRITTEN = "name a list labelemb label-issues wrote"
#: What a list made for other data, another split or other labels is told to do.
REMAKE = (
    f"make the list with this run's data and noise (labelemb label-issues with the same config), or "
    f"name the one made for it in {KEY}"
)


class CleanOptions(Options):
    """``data.clean``: train on the training split cleaned by a list of wrong labels.

    ``issues`` is a ``label_issues.csv`` or ``label_issues.jsonl`` written by ``labelemb
    label-issues`` for this data (and its ``noise:``); ``action`` is ``remove`` (drop the rows it
    flags) or ``relabel`` (give them its suggested label)."""

    section: ClassVar[str] = "clean"
    #: Where the list lies is not what it is: a run compares the list's content (its sha256, part
    #: of the data fingerprint, checked before a finished run is read back), so that a run folder
    #: moved with its list (a ``clean:`` step's, kept in the experiment's folder) reads back.
    not_results: ClassVar[tuple[str, ...]] = ("issues",)

    issues: str
    action: Literal["remove", "relabel"] = "remove"
    #: The run's ``noise:``, applied before the cleaning (the list was made on the noisy labels):
    #: set by the run's config (:meth:`after_noise`), never a key of the file.
    _noise: NoiseConfig | None = PrivateAttr(None)

    def check(self) -> None:
        if Path(self.issues).suffix.lower() not in SUFFIXES:
            raise OptionsError(
                f"config key {KEY!r}: {self.issues!r} is not a list labelemb label-issues writes; name its "
                "label_issues.csv or label_issues.jsonl"
            )

    def after_noise(self, noise: NoiseConfig | None) -> CleanOptions:
        """This section, cleaning the labels that ``noise`` (the run's) makes (a copy)."""
        copy = self.model_copy()
        copy._noise = noise
        return copy

    def applied(self, dataset: Any, request: DataRequest, base: str | None) -> Any:
        """``dataset`` (as loaded) with the run's noise, then this cleaning, on its training split;
        ``base`` the data's own digest (None: it has none), which its fingerprint builds on."""
        if self._noise is not None and getattr(dataset, "noise", None) is None:
            dataset = add_label_noise(dataset, self._noise, request)
        return clean_dataset(dataset, self, request, base)

    def fingerprint(self, base: str | None, request: DataRequest) -> str:
        """The data's content digest ``base`` (None: the data set has none) with the list's and
        the noise's: what the run records, and compares before reading a finished run back."""
        listed = list_digest(find_list(self.issues, request))
        noise = None if self._noise is None else self._noise.model_dump(mode="json")
        described = json.dumps([base, {"clean": self.action, "issues_sha256": listed, "noise": noise}])
        return hashlib.sha256(described.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class IssueList:
    """What cleaning reads of a list: each row's place (file, row number or None), its given and
    suggested label (class names) and whether it is flagged, in the list's order."""

    path: Path
    places: list[tuple[str, int | None]]
    given: list[str]
    suggested: list[str]
    flagged: np.ndarray

    def place(self, k: int) -> str:
        """The list's row ``k`` as a person finds it: ``train.csv, row 5``, or a file's name."""
        file, row = self.places[k]
        return file if row is None else f"{file}, row {row}"


def find_list(name: str, request: DataRequest) -> Path:
    """The list ``data.clean.issues`` names, looked for as every data file is."""
    return find_file(name, request, "data.clean.issues list", key=KEY)


def list_digest(path: Path) -> str:
    """The sha256 of the list file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_issue_list(path: Path) -> IssueList:
    """The rows of a ``label_issues.csv`` or ``.jsonl`` (cells as text: nothing is run)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {error.lineno} is not JSON; {WRITTEN}") from None
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    columns = set(records[0]) if records else set()
    if "given_tags" in columns:
        raise DataError(
            f"{path} is a tag-set list (given_tags); {KEY} cleans one class label per row: "
            "drop data.clean for tag sets"
        )
    missing = [column for column in NEEDED if column not in columns]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(missing)}: it is not a list labelemb label-issues wrote; "
            f"name its label_issues.csv or label_issues.jsonl in {KEY}"
        )
    places = [(str(record["file"]), _row_number(record["row"], path)) for record in records]
    flagged = np.array([_flag(record["flagged"], path) for record in records], dtype=bool)
    given = [str(record["given_label"]) for record in records]
    suggested = [str(record["suggested_label"]) for record in records]
    return IssueList(path, places, given, suggested, flagged)


def _row_number(cell: Any, path: Path) -> int | None:
    if cell is None or cell == "":
        return None
    try:
        return int(cell)
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {cell!r} is not a row number; {WRITTEN}") from None


def _flag(cell: Any, path: Path) -> bool:
    if isinstance(cell, bool):
        return cell
    if str(cell) in ("True", "False"):
        return str(cell) == "True"
    raise DataError(f"{path}: flagged {cell!r} is neither True nor False; {WRITTEN}")


def training_places(dataset: Dataset) -> RowOrigins:
    """Where each training row came from, named as ``labelemb label-issues`` names it: the
    loader's record, else the row of the training file (where dev was carved from it), else of
    the training split, counted from 1."""
    if dataset.train.origins is not None:
        return dataset.train.origins
    size = len(dataset.train)
    if "train" in dataset.file_rows:
        rows = dataset.file_rows["train"].cpu().numpy().astype(np.int64) + 1
        return RowOrigins((f"{dataset.name} training file",), np.zeros(size, dtype=np.int64), rows)
    return RowOrigins.counted([f"{dataset.name} [train]"], [0], size)


def list_positions(listed: IssueList, dataset: Dataset) -> np.ndarray:
    """Each listed row's position in the training split; refused where the list and the split do
    not hold the same rows (the list was made for other data or another split)."""
    origins = training_places(dataset)
    here = {(origins.file(i), origins.row(i)): i for i in range(len(origins))}
    positions = np.array([here.get(place, -1) for place in listed.places], dtype=np.int64)
    outside = np.flatnonzero(positions < 0)
    if len(outside):
        raise DataError(
            f"{listed.path} lists {listed.place(int(outside[0]))}, not a training row of {dataset.name} "
            f"here ({len(outside)} of its {len(positions)} rows are not): it was made for other data or "
            f"another split; {REMAKE}"
        )
    if len(set(positions.tolist())) != len(positions) or len(positions) != len(origins):
        raise DataError(
            f"{listed.path} lists {len(set(positions.tolist()))} distinct rows of {len(positions)}, the "
            f"training split of {dataset.name} here has {len(origins)}: it was made for another split; "
            f"{REMAKE}"
        )
    return positions


def class_ids(names: list[str], class_names: list[str], path: Path, what: str) -> np.ndarray:
    """``names`` (a list's labels) as class ids of ``class_names``; refused for a name not among them."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({name for name in names if name not in index})
    if unknown:
        raise DataError(
            f"{path} gives the {what} {unknown[0]!r}, not a class of this data ({', '.join(class_names[:10])}"
            f"{', ...' if len(class_names) > 10 else ''}): it was made for another data set; {REMAKE}"
        )
    return np.array([index[name] for name in names], dtype=np.int64)


def clean_dataset(dataset: Any, options: CleanOptions, request: DataRequest, base: str | None) -> Dataset:
    """``dataset``'s training split cleaned as ``options`` says (a copy), checked against the list;
    its fingerprint :meth:`CleanOptions.fingerprint` of ``base``."""
    if not isinstance(dataset, Dataset) or dataset.multi_label:
        kind = "a set of tags" if isinstance(dataset, Dataset) else "a sequence"
        raise DataError(
            f"{KEY} cleans one class label per training row; data set {getattr(dataset, 'name', '?')} gives "
            f"each row {kind}: drop data.clean"
        )
    path = find_list(options.issues, request)
    listed = read_issue_list(path)
    positions = list_positions(listed, dataset)
    labels = dataset.train.labels.cpu().numpy()
    given = class_ids(listed.given, dataset.class_names, path, "given label")
    differ = np.flatnonzero(labels[positions] != given)
    if len(differ):
        first = int(differ[0])
        theirs = dataset.class_names[int(labels[positions[first]])]
        raise DataError(
            f"{path} gives {listed.place(first)} the label {listed.given[first]!r}, this run's training "
            f"labels {theirs!r} ({len(differ)} of {len(given)} rows differ): it was made on other labels "
            f"(another noise: section or seed, or other data); {REMAKE}"
        )
    flagged = np.zeros(len(labels), dtype=bool)
    flagged[positions] = listed.flagged
    suggested = np.array(labels, copy=True)
    suggested[positions] = class_ids(listed.suggested, dataset.class_names, path, "suggested label")
    before = _wrong(dataset)
    if options.action == "remove":
        if flagged.all():
            raise DataError(
                f"{path} flags every training row: nothing is left to train on; use action: relabel"
            )
        cleaned = _without(dataset, np.flatnonzero(~flagged))
    else:
        cleaned = _relabelled(dataset, np.where(flagged, suggested, labels))
    record = {
        "issues": str(path),
        "issues_sha256": list_digest(path),
        "action": options.action,
        "rows": int(len(labels)),
        "flagged": int(flagged.sum()),
        "removed": int(flagged.sum()) if options.action == "remove" else 0,
        "relabelled": int((flagged & (suggested != labels)).sum()) if options.action == "relabel" else 0,
        **({} if before is None else {"wrong_before": before, "wrong_after": _wrong(cleaned)}),
    }
    fingerprint = options.fingerprint(base, request)
    cleaned.details = {**dataset.details, "clean": record, "fingerprint": fingerprint}
    return cleaned


def _wrong(dataset: Dataset) -> int | None:
    """How many training labels are wrong, where their truth is known (None where not)."""
    noise = dataset.noise
    return None if noise is None else int(noise.flipped("train", dataset.train.labels).sum())


def _cut(split: Split, keep: np.ndarray, origins: RowOrigins) -> Split:
    """The rows ``keep`` of ``split``: every per-row tensor it holds cut alike, ``origins`` theirs."""
    index = torch.as_tensor(keep, dtype=torch.long)
    values = {}
    for field in dataclasses.fields(split):
        value = getattr(split, field.name)
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == len(split):
            value = value[index.to(value.device)]
        values[field.name] = value
    values["origins"] = origins.take(keep)
    return type(split)(**values)


def _without(dataset: Dataset, keep: np.ndarray) -> Dataset:
    """``dataset`` training on the rows ``keep`` only (sorted positions), each still named by its
    place in its file: its row origins, the training file's rows and the noise's truth cut alike."""
    changes: dict[str, Any] = {"train": _cut(dataset.train, keep, training_places(dataset))}
    if "train" in dataset.file_rows:
        changes["file_rows"] = {
            **dataset.file_rows,
            "train": dataset.file_rows["train"][torch.as_tensor(keep)],
        }
    texts = getattr(dataset, "texts", None)
    if texts and "train" in texts:
        changes["texts"] = {**texts, "train": [texts["train"][i] for i in keep]}
    cleaned = dataclasses.replace(dataset, **changes)
    if dataset.noise is not None:
        truth = dataset.noise.clean["train"][torch.as_tensor(keep)]
        cleaned.noise = _with_truth(dataset, cleaned, truth)
    return cleaned


def _relabelled(dataset: Dataset, labels: np.ndarray) -> Dataset:
    """``dataset`` with ``labels`` as its training labels."""
    train = dataclasses.replace(dataset.train, labels=torch.from_numpy(labels.astype(np.int64)))
    cleaned = dataclasses.replace(dataset, train=train)
    if dataset.noise is not None:
        cleaned.noise = _with_truth(dataset, cleaned, dataset.noise.clean["train"])
    return cleaned


def _with_truth(dataset: Dataset, cleaned: Dataset, truth: torch.Tensor) -> Any:
    """The noise record of ``cleaned``: its training rows' true labels, the matrix they now show."""
    realised = realised_matrix(truth.numpy(), cleaned.train.labels.numpy(), cleaned.num_classes)
    return dataclasses.replace(
        dataset.noise, clean={**dataset.noise.clean, "train": truth}, realised=realised
    )


__all__ = ["CleanOptions", "clean_dataset", "read_issue_list", "training_places"]
