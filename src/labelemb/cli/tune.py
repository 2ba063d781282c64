"""`labelemb tune`: the arguments handed to :func:`labelemb.tune`, and its table said."""

from __future__ import annotations

import argparse

from ..experiment import tune
from ..sweep.failures import failure_table
from .run import common_settings, executor_options, finish


def cmd_tune(args: argparse.Namespace) -> int:
    tuned = tune(
        args.config,
        methods=args.methods,
        trials=args.trials,
        spaces=dict(args.space or []),
        tune_seed=args.tune_seed,
        seeds=args.seeds,
        objective=args.objective,
        prune=args.prune,
        storage=args.storage,
        batched_trials=args.batched_trials,
        retry_running=args.retry_running,
        batched=args.batched,
        **executor_options(args),
        progress=not args.no_progress,
        overrides=common_settings(args),
    )
    print(tuned.table)
    print(f"\nwrote tuning.md, tuning.json and tuning-history.png in {tuned.experiment_dir}")
    if tuned.failed:
        print(f"\n{len(tuned.failed)} fresh run(s) failed:\n{failure_table(tuned.failed)}")
        return max(1, finish(tuned.lacking))
    return finish(tuned.lacking)
