"""Tiny CSVs of tagged texts for the multi-label tests: each tag has its own words among filler
words, so that a bag of words learns them in a few epochs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Each tag's own words; "lib" is the tag a formulaic description ("library for") gives away.
TAG_WORDS = {
    "lib": ["library", "shared", "runtime"],
    "python": ["python", "pip", "module"],
    "gui": ["window", "gtk", "desktop"],
    "net": ["network", "http", "socket"],
}
FILLER = ["the", "a", "package", "for", "with", "and", "tool"]
#: The splits written by :func:`write_tagged_splits`: name, rows, seed.
SPLITS = (("train", 160, 0), ("dev", 48, 1), ("test", 48, 2))


#: The data section's files of a run on :func:`write_tagged_splits` (or :func:`write_faceted_splits`).
TAGGED_FILES = {
    "format": "csv",
    "train": "train.csv",
    "dev": "dev.csv",
    "test": "test.csv",
    "tags_column": "tags",
}


def tagged_table(path: Path, count: int, seed: int) -> None:
    """A CSV (text, tags) of ``count`` texts, each carrying one to four tags (joined by spaces)."""
    rng = np.random.default_rng(seed)
    names = list(TAG_WORDS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "tags"])
        for _ in range(count):
            carried = [tag for tag in names if rng.random() < 0.4] or [names[int(rng.integers(4))]]
            words = [str(rng.choice(TAG_WORDS[tag])) for tag in carried for _ in range(2)]
            words += [str(rng.choice(FILLER)) for _ in range(int(rng.integers(1, 5)))]
            writer.writerow([" ".join(rng.permutation(words)), " ".join(carried)])


def write_tagged_splits(folder: Path) -> Path:
    """train.csv, dev.csv and test.csv of tagged texts in ``folder``; the folder."""
    for name, count, seed in SPLITS:
        tagged_table(folder / f"{name}.csv", count, seed)
    return folder


def faceted_table(path: Path, count: int, seed: int, facets: int = 21, per_facet: int = 10) -> None:
    """A CSV (text, tags) of texts tagged ``facet<f>::tag<t>``: ``facets x per_facet`` tags (210,
    past the 200 that `labelemb analyze` draws as a heatmap), each text one to three tags of one
    facet written as their own words, the first texts carrying every tag once."""
    rng = np.random.default_rng(seed)
    tags = [(f, t) for f in range(facets) for t in range(per_facet)]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "tags"])
        for row in range(count):
            facet, first = tags[row] if row < len(tags) else tags[int(rng.integers(len(tags)))]
            carried = sorted({first, *rng.integers(per_facet, size=int(rng.integers(0, 3))).tolist()})
            words = [f"w{facet}x{tag}" for tag in carried] + [f"facetword{facet}"]
            words += [str(rng.choice(FILLER)) for _ in range(2)]
            writer.writerow(
                [" ".join(rng.permutation(words)), " ".join(f"facet{facet}::tag{t}" for t in carried)]
            )


def write_faceted_splits(folder: Path) -> Path:
    """train.csv (every tag), dev.csv and test.csv of :func:`faceted_table` in ``folder``."""
    for name, count, seed in (("train", 420, 0), ("dev", 80, 1), ("test", 80, 2)):
        faceted_table(folder / f"{name}.csv", count, seed)
    return folder
