"""WordNet 3.0 for NLTK: an NLTK data folder built from Debian's files, and the reader on it.

WordNet 3.0 comes from the Debian packages ``wordnet-base`` and ``wordnet-sense-index``
(``/usr/share/wordnet``). NLTK's reader also needs the ``lexnames`` table, which no Debian package
ships; ours is package data (``lexnames.txt``, the 45-line Princeton table). NLTK 3.10 refuses
to read a corpus outside its data path and refuses symlinks that resolve elsewhere, so
:func:`prepare_wordnet` copies everything into an NLTK data folder (by default
``$XDG_CACHE_HOME/labelemb/nltk_data``) and :func:`wordnet_reader` builds a reader on exactly that
folder, whatever the user's ``NLTK_DATA`` holds.

``nltk`` is an optional dependency (``pip install "labelemb[wordnet]"``), imported only by
:func:`wordnet_reader`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

__all__ = ["DEFAULT_SOURCE", "prepare_wordnet", "wordnet_reader"]

DEFAULT_SOURCE = Path("/usr/share/wordnet")

APT_HINT = "apt-get install wordnet-base wordnet-sense-index"
PIP_HINT = 'pip install "labelemb[wordnet]"'

# What each Debian package installs in /usr/share/wordnet (WordNet 3.0, 1:3.0-37). NLTK reads
# the first group plus index.sense; all are copied so that every NLTK function works.
BASE_FILES = (
    "adj.exc",
    "adv.exc",
    "cntlist.rev",
    "data.adj",
    "data.adv",
    "data.noun",
    "data.verb",
    "index.adj",
    "index.adv",
    "index.noun",
    "index.verb",
    "noun.exc",
    "sentidx.vrb",
    "sents.vrb",
    "verb.exc",
)
SENSE_INDEX_FILES = ("index.sense", "cntlist", "frames.vrb")

_MARKER = ".labelemb-complete.json"
_LEXNAMES_RESOURCE = "lexnames.txt"

# ------------------------------------------------------------------------- the NLTK data folder


def _default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labelemb" / "nltk_data"


def _lexnames_bytes() -> bytes:
    return resources.files("labelemb.analysis").joinpath(_LEXNAMES_RESOURCE).read_bytes()


def _source_files(source: Path) -> list[Path]:
    """The top-level regular files of ``source`` (the wordnet-gui package adds folders: skipped)."""
    return sorted(p for p in source.iterdir() if p.is_file())


def _check_source(source: Path) -> None:
    missing_base = [n for n in BASE_FILES if not (source / n).is_file()]
    missing_sense = [n for n in SENSE_INDEX_FILES if not (source / n).is_file()]
    if not missing_base and not missing_sense:
        return
    packages = []
    if missing_base:
        packages.append(f"wordnet-base (missing {', '.join(missing_base)})")
    if missing_sense:
        packages.append(f"wordnet-sense-index (missing {', '.join(missing_sense)})")
    raise FileNotFoundError(
        f"WordNet 3.0 is not installed in {source}: needs {' and '.join(packages)}. "
        f"On Debian/Ubuntu: `{APT_HINT}`."
    )


def _source_stamp(source: Path) -> dict[str, list[int]]:
    stamp = {}
    for p in _source_files(source):
        st = p.stat()
        stamp[p.name] = [st.st_size, st.st_mtime_ns]
    return stamp


def _is_complete(target: Path, source: Path) -> bool:
    """``target`` holds a finished copy, and (if ``source`` is still there) of the same files."""
    try:
        manifest = json.loads((target / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    files = manifest.get("files", {})
    if not all(n in files for n in (*BASE_FILES, *SENSE_INDEX_FILES)):
        return False
    for name, (size, _mtime) in files.items():
        path = target / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size != size:
            return False
    lexnames = target / "lexnames"
    if lexnames.is_symlink() or not lexnames.is_file() or lexnames.read_bytes() != _lexnames_bytes():
        return False
    if source.is_dir() and all((source / n).is_file() for n in (*BASE_FILES, *SENSE_INDEX_FILES)):
        # Debian updated the database since the copy was made: copy again. (A source that is
        # gone or incomplete, packages removed since, leaves the finished copy in use.)
        return _source_stamp(source) == files
    return True


def prepare_wordnet(folder: Path | str | None = None, source: Path | str = DEFAULT_SOURCE) -> Path:
    """Build an NLTK data folder holding WordNet 3.0 and return it.

    The corpus lands in ``<folder>/corpora/wordnet/``: a copy (real files, not links: NLTK 3.10
    refuses links that resolve outside its data root) of every file in ``source`` (Debian's
    ``/usr/share/wordnet``, from ``wordnet-base`` and ``wordnet-sense-index``) plus ``lexnames``,
    which ships with labelemb. ``folder`` defaults to ``$XDG_CACHE_HOME/labelemb/nltk_data``
    (``~/.cache/labelemb/nltk_data``).

    Idempotent: a finished copy (recorded in a manifest written last) is reused, unless the
    files in ``source`` have changed since. A new copy is built in a temporary folder beside
    the target and renamed into place, so a crash never leaves a half-written corpus where
    NLTK would read it; concurrent first calls take turns on a lock file
    (``<folder>/corpora/.wordnet.lock``) and build it once.

    Raises FileNotFoundError naming the Debian packages to install if ``source`` lacks files.
    """
    folder = Path(folder).expanduser() if folder is not None else _default_folder()
    source = Path(source)
    corpora = folder / "corpora"
    target = corpora / "wordnet"
    if _is_complete(target, source):
        return folder
    if not source.is_dir():
        raise FileNotFoundError(
            f"WordNet 3.0 is not installed: {source} does not exist. On Debian/Ubuntu: `{APT_HINT}`."
        )
    _check_source(source)

    corpora.mkdir(parents=True, exist_ok=True)
    with _locked(corpora / ".wordnet.lock"):
        if not _is_complete(target, source):  # another process may have finished meanwhile
            _build(source, corpora, target)
    return folder


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so that concurrent first calls build the copy once."""
    try:
        import fcntl  # lazy: POSIX only (Windows has no fcntl)
    except ImportError:  # Windows: no lock; the temp-and-rename build is still safe to read
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(source: Path, corpora: Path, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=corpora))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is public data
        stamp = _source_stamp(source)
        for src in _source_files(source):
            dst = tmp / src.name
            shutil.copyfile(src, dst)  # follows a link in the source; writes a real file
            if dst.stat().st_size != stamp[src.name][0]:
                raise OSError(f"copying {src} to {dst} gave a file of the wrong size")
        (tmp / "lexnames").write_bytes(_lexnames_bytes())
        (tmp / _MARKER).write_text(json.dumps({"source": str(source), "files": stamp}, indent=1))
        if target.exists() or target.is_symlink():
            # An older or unfinished copy: move it aside first (a rename cannot replace a
            # non-empty folder), then delete it.
            old = Path(tempfile.mkdtemp(prefix=".wordnet-old-", dir=corpora))
            os.replace(target, old / "wordnet")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_READERS: dict[Path, Any] = {}


def wordnet_reader(
    folder: Path | str | None = None, source: Path | str = DEFAULT_SOURCE
) -> WordNetCorpusReader:
    """NLTK's WordNet 3.0 reader on the folder from :func:`prepare_wordnet` (built if needed).

    The reader is constructed directly on ``<folder>/corpora/wordnet``, so a WordNet elsewhere on
    the user's ``NLTK_DATA`` (another version, say) is never picked up. ``folder`` is appended
    to ``nltk.data.path`` because NLTK 3.10's path guard refuses to open files outside it. One
    reader per folder is kept for the process (loading takes a few seconds).
    """
    try:
        import nltk  # lazy: the wordnet extra
        from nltk.corpus.reader.wordnet import WordNetCorpusReader  # lazy: the wordnet extra
    except ImportError as err:
        raise ImportError(f"the WordNet analysis needs NLTK: {PIP_HINT} (or pip install nltk)") from err
    root = prepare_wordnet(folder, source).resolve()
    cached = _READERS.get(root)
    if cached is not None:
        return cached
    if not any(_same_path(p, root) for p in nltk.data.path):
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():
        # We pass no Open Multilingual Wordnet reader; NLTK warns that it is absent.
        warnings.filterwarnings("ignore", message=".*multilingual functions are not available.*")
        reader = WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)
    version = reader.get_version()
    if version != "3.0":
        raise RuntimeError(f"{root / 'corpora' / 'wordnet'} holds WordNet {version}, expected 3.0")
    _READERS[root] = reader
    return reader


def _same_path(entry: Any, root: Path) -> bool:
    raw = getattr(entry, "path", entry)
    try:
        return Path(str(raw)).expanduser().resolve() == root
    except (OSError, ValueError, RuntimeError):
        return False
