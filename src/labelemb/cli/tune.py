"""`labelemb tune`: the same tuning budget for every method, then its best setting on fresh seeds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .evaluate import evaluate_trained
from .needs import check_needed_data, read_training_data
from .run import _common_overrides, base_config, finish, make_executor

if TYPE_CHECKING:
    from ..sweep.failures import RunsFailed


def cmd_tune(args: argparse.Namespace) -> int:
    from ..analysis.tuning import write_tuning  # lazy: loaded when this command runs
    from ..search import INSTALL_HINT  # lazy: loaded when this command runs

    # lazy: loaded when this command runs
    from ..tuning import STARTUP_TRIALS, TuneError, Tuner, TuneSetting, check_setting

    try:
        # lazy: the tune extra
        import optuna  # noqa: F401
    except ImportError:
        raise TuneError(INSTALL_HINT) from None
    if not args.methods:
        raise TuneError("tune needs --methods (e.g. onehot,label_embedding,label_smoothing)")
    base = base_config(args.config, _common_overrides(args))
    check_needed_data([base.with_method(method) for method in args.methods])
    if args.tune_seed in args.seeds:
        raise TuneError(
            f"--seeds {','.join(map(str, args.seeds))} holds the tuning seed {args.tune_seed}: the best "
            "settings are judged on fresh seeds; give seeds without it (e.g. --seeds 1-5) or another "
            "--tune-seed"
        )
    read_training_data([base])  # a mistake in the data: one line, not one failure per trial
    setting = TuneSetting(
        base=base,
        methods=list(dict.fromkeys(args.methods)),
        trials=args.trials,
        spaces=dict(args.space or []),
        tune_seed=args.tune_seed,
        prune=args.prune,
        storage=args.storage,
        side_by_side=args.side_by_side,
        objective_kind=args.objective,
    )
    check_setting(setting)  # every method's space and config, before anything is written
    executor = make_executor(args)
    slots = len(executor.slots()) if hasattr(executor, "slots") else args.jobs
    # Opens the study store: a URL that does not answer stops here.
    tuner = Tuner(setting, executor, slots, args.retry_running)
    tuner.check_studies()  # every method's study, before any of them trains
    experiment_dir = Path(base.output_dir) / base.experiment
    dev_keys, higher = tuner.dev_keys, tuner.higher
    record: dict[str, Any] = {
        "experiment": base.experiment,
        "objective": {
            "keys": list(dev_keys),
            "name": " or ".join(key.replace("_", " ") for key in dev_keys),
            "higher_is_better": higher,
        },
        "tune_seed": setting.tune_seed,
        "seeds": list(args.seeds),
        "trials": setting.trials,
        "sampler": {"name": "TPE", "startup_trials": STARTUP_TRIALS},
        "prune": setting.prune,
        "storage": "journal" if setting.storage is None else "database",
        "methods": {},
    }
    with executor.session():  # the workers (or the cluster) serve every round and the fresh seeds
        failed, lacking = _tune_and_retrain(setting, tuner, record, args)
    table = write_tuning(experiment_dir)
    print(table)
    if base.train.log_to:
        from ..tracking import log_table  # lazy: loaded when this command runs

        log_table(base, experiment_dir, "tuning")  # the table beside the trials and runs in each tracker
    print(f"\nwrote tuning.md, tuning.json and tuning-history.png in {experiment_dir}")
    if failed is not None:
        from ..sweep.failures import failure_table  # lazy: loaded when this command runs

        print(f"\n{len(failed.failed)} fresh run(s) failed:\n{failure_table(failed.failed)}")
        return max(1, finish(lacking))
    return finish(lacking)


def _tune_and_retrain(
    setting: Any, tuner: Any, record: dict[str, Any], args: argparse.Namespace
) -> tuple[RunsFailed | None, list[tuple[Path, str]]]:
    """Each method tuned, then its default and tuned settings trained on the fresh seeds; the
    fresh runs that failed, if any (the others are trained and evaluated), and the runs that lack
    figures (:func:`~labelemb.cli.run.finish`)."""
    from ..analysis.tuning import TUNING_FILE, values_text  # lazy: loaded when this command runs
    from ..rundir import write_text  # lazy: loaded when this command runs
    from ..sweep.failures import RunsFailed  # lazy: loaded when this command runs
    from ..sweep.grid import run_grid  # lazy: loaded when this command runs
    from ..tuning import study_record, tuned_config  # lazy: loaded when this command runs

    base = setting.base
    experiment_dir = Path(base.output_dir) / base.experiment
    failed = None
    for method in setting.methods:
        if not setting.space(method):
            print(
                f"{method}: nothing to search (no options of its own; add shared keys such as "
                "--space train.lr=1e-4:1e-2:log): its default setting is its tuned one",
                file=sys.stderr,
            )
            record["methods"][method] = {"space": {}, "trials": [], "best_params": {}, "best_value": None}
            continue
        study = tuner.tune(method, on_round=None if args.no_progress else _round_line, on_wait=_wait_line)
        record["methods"][method] = study_record(study, setting, method)
        best = record["methods"][method]
        score = "-" if best["best_value"] is None else f"{best['best_value']:.2f}"
        values = values_text(best["best_params"]) + (
            " (its default setting)" if best["best_is_default"] else ""
        )
        print(f"{method}: best {record['objective']['name']} {score} with {values}", flush=True)
    write_text(experiment_dir / TUNING_FILE, json.dumps(record, indent=1) + "\n")
    defaults = [base.with_method(m).with_seed(s) for m in setting.methods for s in args.seeds]
    tuned = [
        tuned_config(setting, m, record["methods"][m]["best_params"], record["methods"][m]["best_trial"], s)
        for m in setting.methods
        if setting.space(m)
        for s in args.seeds
    ]
    try:
        # The grid checks every setting before any of them trains.
        run_grid(
            [*defaults, *tuned], progress=not args.no_progress, batched=args.batched, executor=tuner.executor
        )
    except RunsFailed as error:
        failed = error  # the fresh runs that finished are evaluated and tabled all the same
    return failed, evaluate_trained([*defaults, *tuned], not args.no_progress)


def _round_line(method: str, done: int, total: int) -> None:
    print(f"tuning {method}: {done}/{total} trials", file=sys.stderr, flush=True)


def _wait_line(method: str, running: list[Any]) -> None:
    owners = [(t.number, t.user_attrs.get("owner", {})) for t in running]
    which = ", ".join(f"trial {n} (process {o.get('pid', '?')} on {o.get('host', '?')})" for n, o in owners)
    print(
        f"tuning {method}: the budget's last trials are running in another tune: {which}; waiting for "
        "them (if that tune is dead, its machine gone or this study copied from it, stop this one "
        "and run it again with --retry-running)",
        file=sys.stderr,
        flush=True,
    )
