"""``labelemb evaluate``: finished runs judged beyond their error, from their saved weights
(:func:`labelemb.evaluate`).

``train`` and ``compare`` evaluate the classifiers they train the same way once they finish, so
the command is for runs trained before, or for other OOD sets.
"""

from __future__ import annotations

import argparse

from ..experiment import Judged, evaluate, shift


def cmd_evaluate(args: argparse.Namespace) -> int:
    judged = evaluate(
        args.path,
        args.ood,
        data_dir=args.data_dir,
        refresh=args.refresh,
        device=args.device or "cpu",
        progress=not args.no_progress,
    )
    return say(judged)


def cmd_shift(args: argparse.Namespace) -> int:
    judged = shift(
        args.path,
        args.corruptions,
        data_dir=args.data_dir,
        refresh=args.refresh,
        device=args.device or "cpu",
        progress=not args.no_progress,
    )
    return say(judged)


def say(judged: Judged) -> int:
    """A line per run, then the comparison written anew (for an experiment folder)."""
    for line in judged.lines():
        print(line)
    if judged.comparison is not None:
        print(judged.comparison.markdown)
    return 0
