"""How the command line (and the Python API, where it takes the same texts) reads seeds, counts
and lists of names."""

from __future__ import annotations

import argparse


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [3]; ``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ``"0-2,7"`` -> [0, 1, 2, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"seeds {text!r} must look like 3, 0-19 or 0,2,5 (whole numbers from 0)"
            ) from None
        if high < low:
            raise argparse.ArgumentTypeError(
                f"seed range {part.strip()!r} is reversed, so it holds no seed; write {high}-{low}"
            )
        seeds += range(low, high + 1)
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"seeds {text!r} name seed(s) {', '.join(map(str, repeated))} more than once"
        )
    return seeds


def parse_names(text: str) -> list[str]:
    """``"onehot, label_embedding,"`` -> ["onehot", "label_embedding"]: a comma-separated list, each
    name without the spaces around it; empty items (a trailing comma) are dropped."""
    return [name for name in (part.strip() for part in text.split(",")) if name]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value
