"""`labelemb train` and `labelemb compare`: the arguments parsed into what :func:`labelemb.train`
and :func:`labelemb.compare` take (the ``key=value`` texts read into settings here, for ``tune``
too), and what they return said on the terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..analysis import results_table
from ..experiment import compare, summarize, train
from ..experiment.judging import lacking_lines
from ..experiment.setting import override_settings, put, run_settings
from ..sweep.failures import RunsFailed, failure_table


def cmd_train(args: argparse.Namespace) -> int:
    trained = train(
        args.config,
        seeds=args.seeds,
        batched=args.batched,
        overrides=common_settings(args),
        progress=not args.no_progress,
    )
    for line in trained.lines():
        print(line)
    if len(trained.summaries) > 1:
        print(results_table(trained.summaries))
    return finish(trained.lacking)


def cmd_compare(args: argparse.Namespace) -> int:
    if args.summarize:
        print(summarize(Path(args.summarize), reference=not args.no_reference).short)
        return 0
    if not args.methods:
        raise ValueError("compare needs --methods (e.g. onehot,label_embedding) or --summarize DIR")
    try:
        comparison = compare(
            args.config,
            methods=args.methods,
            seeds=args.seeds,
            batched=args.batched,
            overrides=common_settings(args),
            **executor_options(args),
            progress=not args.no_progress,
            reference=not args.no_reference,
        )
    except RunsFailed as failed:  # no run finished: nothing to compare
        return failures(failed.failed, len(args.methods) * len(args.seeds), [])
    print(comparison.short)
    if comparison.failed:
        return failures(comparison.failed, comparison.planned, comparison.lacking)
    return finish(comparison.lacking)


def failures(failed: Sequence[object], planned: int, lacking: list[tuple[Path, str]]) -> int:
    """The runs that failed, as a table, and how to go on; exit code 1 (or more)."""
    print(f"\n{len(failed)} of {planned} run(s) failed:\n{failure_table(failed)}")
    print("mend what failed and run the same command again: finished runs are read back", file=sys.stderr)
    return max(1, finish(lacking))


def finish(lacking: list[tuple[Path, str]]) -> int:
    """The exit code of a command whose runs trained: 1, with what is missing, if some lack figures."""
    for line in lacking_lines(lacking):
        print(line, file=sys.stderr)
    return 1 if lacking else 0


def shared_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the options train, compare and tune share ask for (``--data-dir``, ``--device`` ...), as
    :func:`~labelemb.experiment.setting.run_settings` takes them."""
    return {
        "method": getattr(args, "method", None),
        "data_dir": args.data_dir,
        "output_dir": args.output_dir,
        "device": args.device,
        "progress": not args.no_progress,
        "log_to": getattr(args, "log_to", None),
    }


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``key=value`` texts read as settings, then what the shared options of train, compare and
    tune ask for; the API routes the methods' options."""
    settings = override_settings(args.overrides)
    for key, value in run_settings(**shared_options(args)).items():
        put(settings, key, value)
    return settings


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The executor options of compare and tune, as the API's keywords."""
    return {
        "executor": args.executor,
        "jobs": args.jobs,
        "devices": args.devices,
        "runs_per_device": args.runs_per_device,
        "ray_address": args.ray_address,
    }
