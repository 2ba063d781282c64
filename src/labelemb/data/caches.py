"""What labelemb keeps on disk so that a later run is quicker, kind by kind: where it is, how much,
what makes it again, and clearing it (``labelemb cache``; :func:`cache_usage`, :func:`clear_cache`).

Each kind is one or more folders and the names labelemb writes there (glob patterns): only entries
of those names are counted and deleted, so a file of anyone else's in the same folder is left alone.
The caches of a run's data (corrupted copies, a frozen backbone's features, decoded images, Arrow
tables) are under the cache root (``data.files.cache_dir``, else ``$LABELEMB_CACHE``, else
``$XDG_CACHE_HOME/labelemb``, ``~/.cache/labelemb``); the data sets downloaded and the WordNet copy
always under ``$XDG_CACHE_HOME/labelemb``. Every kind is made again when a run needs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..registry import unknown_name_message
from .cifar.spec import CIFAR10, CIFAR100
from .files.paths import cache_root
from .mnist import FASHION_MNIST, MNIST


@dataclass(frozen=True)
class CacheKind:
    """One kind of cache: its name (``labelemb cache clear NAME``), what it holds and what makes it again."""

    name: str
    what: str
    remade: str


#: Every kind, in the order ``labelemb cache`` lists them (the largest usually first).
KINDS = {
    kind.name: kind
    for kind in (
        CacheKind(
            "corrupted",
            "corrupted copies of test splits, scored under shift (a config's shift:, labelemb shift)",
            "made again by the next shift of that data set (MNIST's 34: 1.07 GB, a minute or more)",
        ),
        CacheKind(
            "features",
            "a frozen backbone's features of each split (model.freeze: true), a TF-IDF's matrices and SVD",
            "computed again by the next run of that backbone on that data",
        ),
        CacheKind(
            "images",
            "image files decoded once into uint8 arrays (data.name: files)",
            "decoded again by the next run that reads those images",
        ),
        CacheKind(
            "tables",
            "Hugging Face datasets' Arrow copies of tables and hub data sets (data.name: files)",
            "made again by the next run that reads them (a hub data set is downloaded again)",
        ),
        CacheKind(
            "downloads",
            "MNIST, Fashion-MNIST and CIFAR files downloaded where none were on the machine",
            "downloaded again by the next run that needs them (with the network)",
        ),
        CacheKind(
            "wordnet",
            "WordNet 3.0 copied from /usr/share/wordnet for NLTK (the WordNet figures of analyze, report)",
            "copied again by the next analysis that needs it",
        ),
    )
}


def _built(prefix: str, suffix: str) -> tuple[str, ...]:
    """A cache file written by :mod:`.cache_files`, its lock and a killed build's temporary file."""
    return f"{prefix}-*{suffix}", f"{prefix}-*{suffix}.lock", f".{prefix}-*{suffix}.*.tmp"


def _downloaded() -> list[tuple[str, tuple[str, ...]]]:
    """Each downloadable data set's folder name and the files a download writes there (with a
    download's or an extraction's unfinished temporary)."""
    places = []
    for spec in (MNIST, FASHION_MNIST):
        names = [f"{f.name}.gz" for f in spec.files]
        places.append((spec.name, (*names, *(f".{name}.*.part" for name in names))))
    for cifar in (CIFAR10, CIFAR100):
        made = (cifar.archive, f".{cifar.archive}.*.part", cifar.folder, f".{cifar.folder}.*.part")
        places.append((cifar.name, made))
    return places


def xdg_root() -> Path:
    """``$XDG_CACHE_HOME/labelemb`` (``~/.cache/labelemb``): where downloads and WordNet go."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelemb"


def cache_places(kind: str, cache_dir: str | None = None) -> list[tuple[Path, tuple[str, ...]]]:
    """The folders of ``kind`` and, for each, the glob patterns of what labelemb writes there;
    ``cache_dir``: the cache root if not ``$LABELEMB_CACHE``'s (``data.files.cache_dir``)."""
    root = cache_root(cache_dir)
    if kind == "corrupted":
        return [(root / "corrupted", _built("features", ".safetensors"))]
    if kind == "features":
        # A TF-IDF's matrices and its SVD's directions (tfidf-svd-*) are kept beside the features.
        return [(root / "features", (*_built("features", ".safetensors"), *_built("tfidf", ".safetensors")))]
    if kind == "images":
        return [(root / "images", _built("images", ".u8"))]
    if kind == "tables":
        # hf/ is a folder labelemb hands to Hugging Face datasets: all of it is written for labelemb.
        return [(root / "hf", ("*",))]
    if kind == "downloads":
        return [(xdg_root() / name, patterns) for name, patterns in _downloaded()]
    if kind == "wordnet":
        return [(xdg_root() / "nltk_data" / "corpora", ("wordnet", ".wordnet.lock", ".wordnet-*"))]
    raise ValueError(unknown_name_message("cache kind", kind, KINDS))


@dataclass(frozen=True)
class CacheUse:
    """What one kind holds: its folders, the entries labelemb made there (files or folders), the
    files they hold (a build's lock file not counted) and their size in bytes."""

    kind: CacheKind
    folders: tuple[Path, ...]
    entries: tuple[Path, ...]
    files: int
    size: int

    def line(self) -> str:
        """``corrupted: 34 files, 1.07 GB in /home/me/.cache/labelemb/corrupted``."""
        return f"{self.kind.name}: {self.files} file(s), {format_size(self.size)} in {self.where()}"

    def where(self) -> str:
        """Its folder, or for several (one a data set) their parent with ``<data set>``."""
        if len(self.folders) == 1:
            return str(self.folders[0])
        return str(Path(os.path.commonpath(self.folders)) / "<data set>")


def cache_usage(kinds: Sequence[str] | None = None, cache_dir: str | None = None) -> list[CacheUse]:
    """What each of ``kinds`` (None: every kind, :data:`KINDS`) holds now; ``cache_dir``: the cache
    root if not ``$LABELEMB_CACHE``'s. A ValueError names a kind that does not exist."""
    uses = []
    for name in _checked(kinds):
        places = cache_places(name, cache_dir)
        entries = sorted({entry for folder, patterns in places for entry in _matching(folder, patterns)})
        files, size = _measure(entries)
        uses.append(CacheUse(KINDS[name], tuple(folder for folder, _ in places), tuple(entries), files, size))
    return uses


def clear_cache(kinds: Sequence[str] | None = None, cache_dir: str | None = None) -> list[CacheUse]:
    """Delete what labelemb made in each of ``kinds`` (None: every kind), nothing else; a kind's
    folder goes too once it is empty. Returns what each held (:func:`cache_usage`) before."""
    uses = cache_usage(kinds, cache_dir)
    for use in uses:
        for entry in use.entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)
        for folder in use.folders:
            try:
                folder.rmdir()  # only an empty one: what others keep there stays, and its folder
            except OSError:
                pass
    return uses


def format_size(size: int) -> str:
    """Bytes as a person reads them, in powers of 1000: ``0 B``, ``31.4 MB``, ``1.07 GB``."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{size} B"


def _checked(kinds: Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(KINDS)
    for name in kinds:
        if name not in KINDS:
            raise ValueError(unknown_name_message("cache kind", name, KINDS))
    return list(dict.fromkeys(kinds))


def _matching(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return [entry for pattern in patterns for entry in folder.glob(pattern)]


def _measure(entries: Sequence[Path]) -> tuple[int, int]:
    """The files under ``entries`` (each a file or a folder; lock files not counted) and their bytes."""
    files = size = 0
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            inside = [path for path in entry.rglob("*") if path.is_file() and not path.is_symlink()]
        else:
            inside = [entry]
        files += sum(not path.name.endswith(".lock") for path in inside)  # a build's empty lock: not counted
        size += sum(path.lstat().st_size for path in inside)
    return files, size
