"""The text data sets this process has read from your tables, kept so that reading the same files
again (each run of a comparison, its evaluation, a prediction) costs nothing.

A data set is kept under what makes it: the ``data.files`` and ``data.text`` options, the cap on
training examples, and every file of every split by its resolved path and the sha256 of its bytes,
hashed anew on every load (a fraction of a second for megabytes, against the seconds reading and
encoding them take). A file changed in any way between two loads, under any modification time,
gives a new key and is read again: what is kept is never stale. Each load hands out its own copy
(its own fields and dicts; the splits, their tensors and what the dicts hold are shared: nothing
changes them in place), so that one caller's changes never reach another's data set. The last
:data:`KEPT_DATA_SETS` data sets are kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..base import DataError
from ..registry import DataRequest
from ..text.options import TextOptions
from .options import FilesOptions
from .paths import SPLITS, find_file, split_files

#: How many data sets a process keeps (a comparison reads one; a sweep over two data sets, two).
KEPT_DATA_SETS = 2
#: The formats whose every byte is in the files a split names (a saved or hub set's are not).
TABLE_FORMATS = ("csv", "json", "parquet")

_KEPT: OrderedDict[str, Any] = OrderedDict()


def remembered(request: DataRequest, load: Callable[[], Any]) -> Any:
    """The data set ``load`` reads for ``request``: read once, then a copy of the one kept, for as
    long as the key of its options and files (see the module docstring) is the same."""
    key = data_key(request)
    if key is None:
        return load()
    if key not in _KEPT:
        _KEPT[key] = load()
        while len(_KEPT) > KEPT_DATA_SETS:
            _KEPT.popitem(last=False)
    _KEPT.move_to_end(key)
    return handed_out(_KEPT[key])


def forget_data_sets() -> None:
    """Drop every kept data set (their memory; the next load reads the files again)."""
    _KEPT.clear()


def data_key(request: DataRequest) -> str | None:
    """What the text data set of ``request`` is made from, as one sha256; None for data that is not
    kept (images, a saved or hub data set, texts read by a pretrained encoder's tokenizer, or
    files that cannot be found or read here: their loader says why)."""
    files = request.options(FilesOptions)
    if files.format not in TABLE_FORMATS or files.yields() == "images" or request.text_encoder:
        return None
    digest = hashlib.sha256()
    described = {
        "files": files.model_dump(mode="json"),
        "text": request.options(TextOptions).model_dump(mode="json"),
        "max_train_pairs": request.max_train_pairs,
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    dumped = files.model_dump()
    try:
        for split in SPLITS:
            for name in split_files(dumped, split):
                path = find_file(name, request, f"{split} file").resolve()
                digest.update(f"|{split}|{path}|".encode())
                with open(path, "rb") as handle:
                    digest.update(hashlib.file_digest(handle, "sha256").digest())
    except (DataError, OSError):
        return None
    return digest.hexdigest()


def handed_out(dataset: Any) -> Any:
    """A copy of ``dataset`` of its own: its dicts (details, texts, ...) copied a level deep, what
    they hold and its splits (whose fields are replaced, never changed) shared."""
    out = copy.copy(dataset)
    for name, value in vars(dataset).items():
        if isinstance(value, dict):
            setattr(out, name, dict(value))
    return out
