"""TF-IDF of a text data set's splits: scikit-learn's ``TfidfVectorizer`` fitted on the training
texts alone, computed once per data set and kept on disk as data (safetensors), never pickled.

The vectorizer's options are :class:`~labelemb.data.text.options.TfidfOptions` (words and word
pairs, sublinear tf, ``min_df`` 2 by default). One cache file holds the fitted vectorizer (its
terms in column order, as JSON bytes, and its idf weights) and each split's TF-IDF as a float32
CSR matrix; it is named by a sha256 key of the options, scikit-learn's version and every split's
texts, and read back only when its key and checksum agree (:mod:`labelemb.data.feature_cache`'s
rules): a changed option or file makes new features, never a stale file.

:func:`tfidf_matrices` is the one door: the splits' sparse matrices (train, dev, test) and the
fitted vectorizer, which turns new texts into the same columns (:meth:`FittedTfidf.transform`).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..base import DataError
from ..cache_files import build_once, write_atomically
from ..files.paths import cache_root
from .options import TfidfOptions

#: Bump when what a key covers or how the file is laid out changes.
FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "dev", "test")
_WHAT = "TF-IDF cache"


def sklearn_version() -> str:
    import sklearn  # lazy: scikit-learn is imported by the commands that fit it only

    return str(sklearn.__version__)


@dataclass
class FittedTfidf:
    """A fitted ``TfidfVectorizer`` as data: its ``options``, its ``terms`` (column ``j`` is
    ``terms[j]``) and their ``idf`` weights (float64; empty when ``use_idf`` is off)."""

    options: TfidfOptions
    terms: list[str]
    idf: np.ndarray

    @property
    def width(self) -> int:
        """The number of columns (terms)."""
        return len(self.terms)

    def vectorizer(self) -> Any:
        """A scikit-learn ``TfidfVectorizer`` with these terms and weights, ready to ``transform``."""
        from sklearn.feature_extraction.text import TfidfVectorizer  # lazy: scikit-learn

        vectorizer = TfidfVectorizer(
            **self.options.vectorizer_arguments(),
            vocabulary={term: j for j, term in enumerate(self.terms)},
        )
        if self.options.use_idf:
            vectorizer.idf_ = self.idf
        return vectorizer

    def transform(self, texts: list[str]) -> Any:
        """The TF-IDF of ``texts`` in these columns: a scipy CSR matrix, float32 ``(N, width)``."""
        return self.vectorizer().transform(texts).astype(np.float32)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the vectorizer is, as tensors: its terms (JSON, UTF-8 bytes) and idf weights."""
        terms = json.dumps(self.terms, ensure_ascii=False).encode()
        return {
            "tfidf.terms": torch.frombuffer(bytearray(terms), dtype=torch.uint8),
            "tfidf.idf": torch.from_numpy(np.asarray(self.idf, dtype=np.float64).copy()),
        }

    @classmethod
    def from_tensors(cls, options: TfidfOptions, tensors: dict[str, torch.Tensor]) -> FittedTfidf:
        """The vectorizer :meth:`tensors` wrote."""
        terms = json.loads(bytes(tensors["tfidf.terms"].cpu().numpy()).decode())
        return cls(options, terms, tensors["tfidf.idf"].cpu().numpy().astype(np.float64))


@dataclass
class TfidfMatrices:
    """A data set's TF-IDF: each split's scipy CSR matrix (float32; ``dev`` None where the data set
    has no dev split), the fitted vectorizer, the cache ``key`` and ``path``, whether the file was
    read (``reused``) and the seconds it took."""

    train: Any
    dev: Any
    test: Any
    vectorizer: FittedTfidf
    key: str
    path: Path
    reused: bool
    seconds: float


def tfidf_matrices(
    dataset: Any,
    options: TfidfOptions | None = None,
    cache_dir: str | None = None,
    *,
    progress: bool = True,
) -> TfidfMatrices:
    """The TF-IDF of ``dataset``'s splits (a text data set that keeps its texts, ``dataset.texts``),
    the vectorizer fitted on train alone: read from the cache (``cache_dir``, else
    ``$LABELEMB_CACHE`` or the user's cache folder) or computed and written there."""
    options = options or TfidfOptions()
    texts = getattr(dataset, "texts", None) or {}
    if "train" not in texts:
        raise DataError(
            f"data set {getattr(dataset, 'name', '?')!r} keeps no texts: TF-IDF reads text data sets "
            "(data.name: files with a text column)"
        )
    started = time.perf_counter()
    key = tfidf_key(options, texts)
    path = cache_root(cache_dir) / "features" / f"tfidf-{key[:32]}.safetensors"
    counts = {split: len(texts[split]) for split in SPLIT_NAMES if split in texts}
    found = read_tfidf(path, key, options, counts)
    reused = found is not None
    if found is None:
        found, reused = build_once(
            path,
            _WHAT,
            partial(_read_under_lock, path, key, options, counts),
            partial(_fit_and_write, path, key, options, texts),
            progress=progress,
        )
    vectorizer, splits = found
    return TfidfMatrices(
        splits["train"],
        splits.get("dev"),
        splits["test"],
        vectorizer,
        key,
        path,
        reused,
        round(time.perf_counter() - started, 3),
    )


def tfidf_key(options: TfidfOptions, texts: dict[str, list[str]]) -> str:
    """The sha256 of what the TF-IDF depends on: the options, scikit-learn's version, each split's texts."""
    digest = hashlib.sha256()
    described = {
        "format": FORMAT_VERSION,
        "options": options.model_dump(mode="json"),
        "sklearn": sklearn_version(),
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    for split in SPLIT_NAMES:
        if split in texts:
            digest.update(f"|{split}|{len(texts[split])}\n".encode())
            for text in texts[split]:
                encoded = text.encode("utf-8", "surrogatepass")
                digest.update(f"{len(encoded)}:".encode())
                digest.update(encoded)
    return digest.hexdigest()


def fit_tfidf(options: TfidfOptions, train: list[str]) -> tuple[FittedTfidf, Any]:
    """The vectorizer fitted on ``train`` and train's TF-IDF; a vocabulary that comes out empty
    (every text empty of words, or ``min_df`` above every term's count) is one :class:`DataError`."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # lazy: scikit-learn

    if not any(text.strip() for text in train):
        raise DataError(
            "TF-IDF: every training text is empty; fill in the text column (data.files.input_column)"
        )
    vectorizer = TfidfVectorizer(**options.vectorizer_arguments())
    try:
        matrix = vectorizer.fit_transform(train)
    except ValueError as error:  # scikit-learn: an empty vocabulary, or max_df below min_df
        raise DataError(
            f"TF-IDF of {len(train):,} training texts left no terms ({error}); lower "
            f"model.vectorizer.min_df (now {options.min_df!r}) or raise max_df (now {options.max_df!r}), "
            "or check token_pattern and stop_words"
        ) from None
    terms = [str(term) for term in vectorizer.get_feature_names_out()]
    idf = np.asarray(vectorizer.idf_, dtype=np.float64) if options.use_idf else np.zeros(0)
    return FittedTfidf(options, terms, idf), matrix.astype(np.float32)


def _fit_and_write(
    path: Path, key: str, options: TfidfOptions, texts: dict[str, list[str]]
) -> tuple[FittedTfidf, dict[str, Any]]:
    fitted, train = fit_tfidf(options, texts["train"])
    splits = {"train": train}
    for split in SPLIT_NAMES[1:]:
        if split in texts:
            splits[split] = fitted.transform(texts[split])
    tensors = dict(fitted.tensors())
    for split, matrix in splits.items():
        tensors.update(_csr_tensors(split, matrix))
    shapes = {split: list(matrix.shape) for split, matrix in splits.items()}
    metadata = {"key": key, "shapes": json.dumps(shapes), "sha256": _tensors_sha256(tensors)}
    blob = save(tensors, metadata=metadata)
    write_atomically(path, _WHAT, lambda handle: handle.write(blob))
    return fitted, splits


def _read_under_lock(
    path: Path, key: str, options: TfidfOptions, counts: dict[str, int]
) -> tuple[FittedTfidf, dict[str, Any]] | None:
    found = read_tfidf(path, key, options, counts, warn=True)
    return found


def read_tfidf(
    path: Path, key: str, options: TfidfOptions, counts: dict[str, int], *, warn: bool = False
) -> tuple[FittedTfidf, dict[str, Any]] | None:
    """The vectorizer and matrices stored at ``path`` if they are those of ``key`` with ``counts``
    rows per split; else None (with a warning, given ``warn``, where a file is there but is not them)."""
    if not path.exists():
        return None
    problem = None
    try:
        with safe_open(path, framework="pt") as stored:
            metadata = stored.metadata() or {}
            tensors = {name: stored.get_tensor(name) for name in stored.keys()}
        if metadata.get("key") != key:
            problem = "was built for other options or other texts"
        elif metadata.get("sha256") != _tensors_sha256(tensors):
            problem = "is damaged (its content does not match its checksum)"
        else:
            shapes = json.loads(metadata["shapes"])
            if {split: shape[0] for split, shape in shapes.items()} != counts:
                problem = "holds other splits than the data set's"
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        problem = f"is damaged or unreadable ({exc})"
    if problem is not None:
        if warn:
            warnings.warn(f"TF-IDF cache {path} {problem}: computing it again", stacklevel=5)
        return None
    splits = {split: _csr_of(split, tensors, shape) for split, shape in shapes.items()}
    return FittedTfidf.from_tensors(options, tensors), splits


def _csr_tensors(split: str, matrix: Any) -> dict[str, torch.Tensor]:
    matrix = matrix.tocsr()
    matrix.sort_indices()
    return {
        f"{split}.data": torch.from_numpy(np.asarray(matrix.data, dtype=np.float32)),
        f"{split}.indices": torch.from_numpy(np.asarray(matrix.indices, dtype=np.int64)),
        f"{split}.indptr": torch.from_numpy(np.asarray(matrix.indptr, dtype=np.int64)),
    }


def _csr_of(split: str, tensors: dict[str, torch.Tensor], shape: list[int]) -> Any:
    from scipy.sparse import csr_matrix  # lazy: scipy comes with scikit-learn

    parts = (tensors[f"{split}.{name}"].numpy() for name in ("data", "indices", "indptr"))
    return csr_matrix(tuple(parts), shape=tuple(shape))


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        flat = tensors[name].contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{flat.numel()}\n".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()
