"""`labelemb train` and `labelemb compare`: runs from a config, and the comparison they leave."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .comparison import write_comparison
from .evaluate import evaluate_trained, lacking_lines
from .needs import check_needed_data, read_training_data

if TYPE_CHECKING:
    from ..training import RunConfig


#: The embedded default experiment, the demo's and that of train, compare and tune without
#: --config: no file, no network (scikit-learn's bundled 8x8 digits).
DEMO_CONFIG: dict[str, Any] = {
    "experiment": "demo-digits-mlp",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [500, 500]},
    "train": {"epochs": 30, "batch_size": 100, "lr": 1e-3},
    "selection": "best_dev",
    # Photo patches at the digits' size: how well the classifier tells them from digits, offline.
    "ood": [{"data": "patches"}],
}


def base_config(path: str | None, overrides: list[str]) -> RunConfig:
    """The config of ``train``, ``compare`` and ``tune``: the file at ``path`` with ``overrides``,
    or without one the demo's own setting (:data:`DEMO_CONFIG`), its relative file names read from
    the working folder; on another data set than the demo's, without its OOD set unless the
    overrides name one."""
    from ..training import build_config, load_config  # lazy: loaded when this command runs

    if path is not None:
        return load_config(path, overrides)
    setting = dict(DEMO_CONFIG)
    names = [o.partition("=")[2] for o in overrides if o.startswith("data.name=")]
    if names and names[-1] != DEMO_CONFIG["data"]["name"] and not any(o.startswith("ood") for o in overrides):
        # The photo patches are the digits' out-of-distribution set, no other data set's: dropped
        # before the config is checked, which would refuse them beside text or other images.
        del setting["ood"]
    # Relative file names on the command line are the user's, as typed in this folder.
    return build_config(setting, overrides).model_copy(update={"source_folder": str(Path.cwd())})


def run_seeds(base: RunConfig, seeds: list[int], batched: bool = False) -> list[dict[str, Any]]:
    """Train ``base`` once per seed: each run's config is a copy of ``base`` with its seed."""
    from ..training import train, train_seeds  # lazy: loaded when this command runs

    configs = [base.with_seed(seed) for seed in seeds]
    if batched:
        return train_seeds(configs, batched=True, progress=base.train.progress)
    return [train(config) for config in configs]


def cmd_train(args: argparse.Namespace) -> int:
    from ..analysis import results_table  # lazy: loaded when this command runs
    from ..tasks.registry import recorded_scoring  # lazy: loaded when this command runs

    base = base_config(args.config, _common_overrides(args))  # validates everything once, before any training
    check_needed_data([base])
    seeds = args.seeds or [base.seed]
    summaries = run_seeds(base, seeds, batched=args.batched)
    lacking = evaluate_trained([base.with_seed(seed) for seed in seeds], not args.no_progress)
    for summary, seed in zip(summaries, seeds):
        run_dir = base.with_seed(seed).run_dir()
        scoring = recorded_scoring(summary)
        selected, final = (summary[f"{when}_{scoring.metric}"] for when in ("selected", "final"))
        print(
            f"{summary['method']} seed {seed}: selected {scoring.name} {scoring.format(selected)} "
            f"(final {scoring.format(final)}), "
            f"{summary['seconds_per_epoch']:.2f} s/epoch -> {run_dir}"
        )
    if len(summaries) > 1:
        print(results_table(summaries))
    return finish(lacking)


def finish(lacking: list[tuple[Path, str]]) -> int:
    """The exit code of a command whose runs trained: 1, with what is missing, if some lack figures."""
    for line in lacking_lines(lacking):
        print(line, file=sys.stderr)
    return 1 if lacking else 0


def _common_overrides(args: argparse.Namespace) -> list[str]:
    """The key=value overrides plus what the shared options of train, compare and tune ask for.

    With ``--methods``, a bare method option goes to the methods that take it
    (:func:`~labelemb.config.method_overrides`)."""
    overrides = list(args.overrides)
    names = getattr(args, "methods", None)
    if names:
        from ..config import method_overrides  # lazy: loaded when this command runs

        # The base config is checked as one of the methods that run, not the file's own method,
        # which may lack an option meant for them.
        overrides = [f"method.name={names[0]}", *method_overrides(overrides, names)]
    if getattr(args, "method", None):
        overrides.append(f"method.name={args.method}")
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.no_progress:
        overrides.append("train.progress=false")
    if getattr(args, "log_to", None):
        overrides.append(f"train.log_to=[{','.join(args.log_to)}]")
    return overrides


def cmd_compare(args: argparse.Namespace) -> int:
    from ..sweep.failures import RunsFailed, failure_table  # lazy: loaded when this command runs
    from ..sweep.grid import run_grid  # lazy: loaded when this command runs

    if args.summarize:
        print(write_comparison(Path(args.summarize), short=True))
        return 0
    if not args.methods:
        raise ValueError("compare needs --methods (e.g. onehot,label_embedding) or --summarize DIR")
    base = base_config(args.config, _common_overrides(args))
    configs = [base.with_method(method).with_seed(seed) for method in args.methods for seed in args.seeds]
    check_needed_data([base.with_method(method) for method in args.methods])
    read_training_data(configs)  # a mistake in the data: one line, not one failure per run
    executor = make_executor(args)
    failed = None
    try:
        # The grid checks every run before any of them trains.
        run_grid(configs, progress=not args.no_progress, batched=args.batched, executor=executor)
    except RunsFailed as error:
        failed = error  # the runs that finished are compared all the same
    hint = batched_hint(configs, args)  # once the runs passed their checks: a mistake stays one line
    if hint:
        print(hint, file=sys.stderr)
    lacking = []
    if failed is None or failed.summaries:
        lacking = _compare_finished(base, configs, not args.no_progress)
    if failed is not None:
        print(f"\n{len(failed.failed)} of {len(configs)} run(s) failed:\n{failure_table(failed.failed)}")
        print("mend what failed and run the same command again: finished runs are read back", file=sys.stderr)
        return max(1, finish(lacking))
    return finish(lacking)


def _compare_finished(base: RunConfig, configs: list[RunConfig], progress: bool) -> list[tuple[Path, str]]:
    """The finished runs evaluated, their comparison written (and logged to the trackers); returns
    the runs that lack figures (:func:`finish`)."""
    lacking = evaluate_trained(configs, progress)
    experiment_dir = Path(base.output_dir) / base.experiment
    # A few columns on the terminal; every table in the files (issue 79).
    print(write_comparison(experiment_dir, short=True))
    if base.train.log_to:
        from ..tracking import log_table  # lazy: loaded when this command runs

        log_table(base, experiment_dir, "comparison")  # the table beside the runs in each tracker
    return lacking


#: What --batched bought on one GPU (docs/running-many.md: an H100, the MNIST MLP for 3 epochs, 8
#: seeds of label_embedding, main at bab8be2): seeds side by side against --runs-per-device 1.
BATCHED_ON_GPU = "16x the runs per second of --runs-per-device 1 (8: 1.65x) on an H100"


def batched_hint(configs: list[RunConfig], args: argparse.Namespace) -> str | None:
    """One line where ``compare`` trains on a GPU, without ``--batched``, seeds that could train
    side by side (a stackable method, equal settings): ``--batched`` is the faster way there."""
    import torch  # lazy: loaded when this command runs

    from ..training import stacking_key, unsupported_reason  # lazy: loaded when this command runs

    device = configs[0].train.device
    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if args.batched or not on_gpu:
        return None
    methods = {}
    for config in configs:
        if unsupported_reason(config) is None:
            methods.setdefault(config.method.name, []).append(stacking_key(config))
    stackable = [name for name, keys in methods.items() if len(keys) > 1 and all(k == keys[0] for k in keys)]
    if not stackable:
        return None
    return (
        f"note: the seeds of {', '.join(stackable)} can train side by side on the GPU: add --batched, "
        f"which trained {BATCHED_ON_GPU} (see Running many runs)"
    )


def make_executor(args: argparse.Namespace) -> Any:
    """The executor ``compare``'s options ask for (:mod:`labelemb.sweep.executors`)."""
    from ..sweep.executors import ExecutorError, LocalExecutor  # lazy: loaded when this command runs

    if args.executor == "ray":
        from ..sweep.ray_executor import RayExecutor  # lazy: loaded when this command runs

        if args.devices:
            # Ray, not the driver, picks each run's GPU on the cluster's nodes: a list of this
            # machine's devices would be a promise the command could not keep.
            raise ExecutorError(
                f"--devices {','.join(args.devices)} is for --executor local: under --executor ray, Ray "
                "picks each run's GPU on the cluster (--runs-per-device K shares one); drop --devices"
            )

        return RayExecutor(address=args.ray_address, runs_per_device=args.runs_per_device)
    if args.ray_address:
        raise ExecutorError("--ray-address is for --executor ray; add --executor ray or drop it")
    return LocalExecutor(jobs=args.jobs, devices=args.devices, runs_per_device=args.runs_per_device)
