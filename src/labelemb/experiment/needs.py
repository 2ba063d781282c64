"""Every data set a command's runs will read, found before any of them trains: the training data,
the out-of-distribution sets of ``ood:`` and the test texts a text run's ``shift:`` perturbs.

Training takes minutes and the evaluation after it reads the other sets: a set that is missing is
said in one line (what, where it was looked for, how to get it) before that time is spent. A grid
of runs also reads each training data set once before any run starts (:func:`read_training_data`),
so that a mistake in the data (a label that is not a class, pixels out of range) is one line too,
not one failure per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from ..assembly import data_of
from ..data import DataError
from ..data.files.options import FilesOptions
from ..data.files.paths import find_file
from ..data.registry import dataset_key, dataset_yields, load, missing_files


def check_needed_data(configs: Sequence[Any]) -> None:
    """Raise one :class:`~labelemb.data.DataError` line for the first data set the runs of
    ``configs`` need that is not on this machine and cannot be downloaded."""

    seen: set[str] = set()
    for config in configs:
        for what, key, look in _needs(config):
            if key in seen:  # the runs of a comparison share their data: looked for once
                continue
            seen.add(key)
            problem = look()
            if problem is not None:
                raise DataError(f"{what}: {problem}")


def read_training_data(configs: Sequence[Any]) -> None:
    """Read each distinct training data set of ``configs`` once, as its runs will (noise included):
    the first :class:`~labelemb.data.DataError` is raised here, once, instead of by every run."""

    seen: set[str] = set()
    for config in configs:
        source = data_of(config)
        key = repr((source.name, source.request, source.noise))
        if key not in seen:
            seen.add(key)
            source.load()


def _needs(config: Any) -> Iterator[tuple[str, str, Callable[[], str | None]]]:
    """(what the data is to the run, what tells it apart, its lookup: what is missing, or None) for
    each data set ``config``'s run reads."""

    request = data_of(config).request
    name = config.data.name
    yield f"training data (data.name: {name})", repr((name, request)), lambda: _named(name, request)
    # An OOD set by name is read with its own defaults, where the run's own data is looked for.
    own = replace(request, sections={}, max_train_pairs=None, progress=False)
    for entry in config.ood:
        what = f"ood set {entry.label!r}"
        if entry.data is not None:
            key = dataset_key(entry.data)
            yield what, repr((key, own)), lambda key=key: _named(key, own)
        else:
            yield what, repr((entry.path, request)), lambda path=entry.path: _file(path, request)
    if config.shift and dataset_yields(name, config.data_sections()) == "texts":
        yield "shift (text perturbations)", repr(("shift", config.data)), lambda: _test_texts(config)


def _named(name: str, request: Any) -> str | None:
    """What data set ``name`` lacks; fetched now where it may be downloaded (training would wait for
    it anyway), so that only a failed download is a problem."""

    problem = missing_files(name, request)
    if problem is None or not request.download:
        return problem
    try:
        load(name, replace(request, max_train_pairs=None))
    except DataError:
        return f"{problem} (its download failed)"
    return None


def _file(path: str, request: Any) -> str | None:
    """Where a file was looked for, if it is not found."""

    try:
        find_file(str(path), request, "file")
    except DataError as error:
        return str(error).replace("in data.files", "in ood")
    return None


def _test_texts(config: Any) -> str | None:
    """Text perturbations read the run's test file: a run without one cannot be shifted."""

    if config.data.name != "files" or not config.section(FilesOptions).test:
        return (
            f"text perturbations read the run's test texts from its test file (data.files.test); "
            f"data set {config.data.name!r} has none: train on files with a test file, or remove shift"
        )
    return None
