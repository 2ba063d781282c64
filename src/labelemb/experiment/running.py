"""``labelemb.train`` and ``labelemb.compare``: runs from a config, judged once they finish, and
the comparison they leave, one call each (the commands ``train`` and ``compare`` call them)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..analysis import results_table
from ..config import RunConfig
from ..steps import prepared
from ..sweep.executors import ExecutorError, LocalExecutor
from ..sweep.failures import RunsFailed
from ..sweep.grid import run_grid
from ..tasks.registry import recorded_scoring
from ..tracking import log_table
from ..training import stacking_key, unsupported_reason
from ..training import train as train_runs
from .judging import evaluate_trained
from .needs import check_needed_data, read_training_data
from .setting import (
    ConfigSource,
    Seeds,
    Settings,
    flat_settings,
    method_names,
    method_settings,
    override_settings,
    plain_settings,
    put,
    seed_numbers,
    typed_config,
)
from .tables import Comparison, write_comparison


@dataclass(repr=False)
class Training:
    """What :func:`train` trained: each seed's summary (summary.json) and run folder, and the runs
    that trained but could not be judged, (run folder, the command that adds their figures). A
    notebook shows it as its table; a shell, as one line."""

    summaries: list[dict[str, Any]]
    run_dirs: list[Path]
    lacking: list[tuple[Path, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A line per run: its selected and final score, seconds per epoch and folder."""
        lines = []
        for summary, run_dir in zip(self.summaries, self.run_dirs):
            scoring = recorded_scoring(summary)
            selected, final = (summary[f"{when}_{scoring.metric}"] for when in ("selected", "final"))
            lines.append(
                f"{summary['method']} seed {summary['seed']}: selected {scoring.name} "
                f"{scoring.format(selected)} (final {scoring.format(final)}), "
                f"{summary['seconds_per_epoch']:.2f} s/epoch -> {run_dir}"
            )
        return lines

    def to_markdown(self) -> str:
        """The runs' scores, mean ± std over the seeds."""
        return results_table(self.summaries)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        # Short: the dataclass's own repr printed every summary in full.
        methods = list(dict.fromkeys(str(summary["method"]) for summary in self.summaries))
        seeds = [summary["seed"] for summary in self.summaries]
        folder = str(self.run_dirs[0].parent.parent) if self.run_dirs else None
        lacking = f", lacking={len(self.lacking)}" if self.lacking else ""
        return f"Training(methods={methods}, seeds={seeds}, experiment_dir={folder!r}{lacking})"


#: Overrides as the calls take them: settings (dotted config keys to values), or the command
#: line's ``key=value`` texts.
Overrides = Settings | Sequence[str]


def train(
    config: ConfigSource = None,
    *,
    seeds: Seeds | None = None,
    batched: bool = False,
    overrides: Overrides = (),
    progress: bool = True,
    **options: Any,
) -> Training:
    """Train the run ``config`` describes once per seed and judge each finished classifier, as
    ``labelemb train`` does: ``config`` is a YAML file, a mapping, a
    :class:`~labelemb.config.RunConfig`, or None for the embedded digits demo; ``overrides`` maps
    dotted config keys to values (``{"train.epochs": 3}``; the command line's ``key=value`` texts
    are taken too), and every other keyword is one more (``train={"epochs": 3}``,
    ``method={"name": "label_embedding"}``, ``tau=4``), each set on the config as it is given.
    The seeds (one, an iterable such as ``range(3)``, or a text such as ``"0-2"``) default to the
    config's own."""
    # The config's steps (clean:) before its runs: they may train runs of their own.
    base = prepared(typed_config(config, call_settings(overrides, options, progress)))
    check_needed_data([base])
    configs = [base.with_seed(seed) for seed in (seed_numbers(seeds) if seeds is not None else [base.seed])]
    summaries = train_runs(configs, batched=batched)
    lacking = evaluate_trained(configs, progress)
    return Training(summaries, [config.run_dir() for config in configs], lacking)


def call_settings(overrides: Overrides, options: Settings, progress: bool) -> dict[str, Any]:
    """What a call sets on its config: the overrides, then the keywords, then ``progress``."""
    if isinstance(overrides, str):
        raise ValueError(
            f"overrides={overrides!r}: give a mapping such as {{'train.epochs': 3}} (or a list of "
            "key=value texts)"
        )
    if isinstance(overrides, Mapping):
        settings = plain_settings(overrides)
    else:
        settings = override_settings(overrides)  # the command line's texts, read in one place
    for key, value in flat_settings(options).items():
        put(settings, key, value)
    if not progress:
        put(settings, "train.progress", False)
    return settings


def compare(
    config: ConfigSource = None,
    *,
    methods: str | Sequence[str],
    seeds: Seeds = (0,),
    batched: bool = False,
    executor: Any = "local",
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    runs_per_device: int = 1,
    ray_address: str | None = None,
    overrides: Overrides = (),
    progress: bool = True,
    reference: bool = True,
    **options: Any,
) -> Comparison:
    """Train every method on every seed and compare them, as ``labelemb compare`` does: the same
    runs, evaluations and files (comparison.md, comparison.csv, the curves, ranks.png), returned
    as a :class:`Comparison`. ``executor`` is where the runs train: an executor, or its kind for
    :func:`make_executor` with ``jobs``, ``devices``, ``runs_per_device`` and ``ray_address``
    (by default here, one after another); ``config`` (a :class:`~labelemb.config.RunConfig` too),
    ``seeds``, ``overrides`` and the keywords as for :func:`train`, a bare method option going to
    the methods that take it (``{"beta": 0.8}`` sets bootstrap's and leaves onehot alone). Runs that fail are
    listed in the result's ``failed``; the others are compared all the same. A comparison on texts or
    tag sets shows a linear reference beside the methods (``reference=False`` leaves it out:
    :func:`write_comparison`)."""
    base, configs = compared_configs(config, methods, seeds, call_settings(overrides, options, progress))
    methods = list(dict.fromkeys(run.method.name for run in configs))
    check_needed_data([base.with_method(method) for method in methods])
    read_training_data(configs)  # a mistake in the data: one line, not one failure per run
    executor = make_executor(
        executor, jobs=jobs, devices=devices, runs_per_device=runs_per_device, ray_address=ray_address
    )
    failed = None
    try:
        # The grid checks every run before any of them trains.
        run_grid(configs, progress=progress, batched=batched, executor=executor)
    except RunsFailed as error:
        failed = error  # the runs that finished are compared all the same
    hint = batched_hint(configs, batched)  # once the runs passed their checks: a mistake stays one line
    if hint:
        print(hint, file=sys.stderr)
    if failed is not None and not failed.summaries:
        raise failed  # nothing finished: nothing to compare
    lacking = evaluate_trained(configs, progress)
    experiment_dir = Path(base.output_dir) / base.experiment
    comparison = write_comparison(experiment_dir, base, reference=reference)
    if base.train.log_to:
        log_table(base, experiment_dir, "comparison")  # the table beside the runs in each tracker
    failures = [] if failed is None else list(failed.failed)
    return replace(comparison, lacking=lacking, failed=failures, planned=len(configs))


def compared_configs(
    config: ConfigSource, methods: str | Sequence[str], seeds: Seeds, settings: Settings
) -> tuple[RunConfig, list[RunConfig]]:
    """The config of a comparison (checked as its first method's) and its runs, each method on
    each seed, in that order; a mistake in the methods, seeds or settings is one line here."""
    methods = method_names(methods)
    seeds = seed_numbers(seeds)
    if not methods:
        raise ValueError("compare needs methods (e.g. onehot,label_embedding)")
    base = typed_config(config, method_settings(settings, methods))
    for method in methods[1:]:  # each method's config checked before a step below trains anything
        typed_config(base, {"method.name": method})
    # The config's steps (clean:) before its runs: they may train runs of their own.
    base = prepared(base)
    return base, [base.with_method(method).with_seed(seed) for method in methods for seed in seeds]


#: What --batched bought on one GPU (docs/running-many.md: an H100, the MNIST MLP for 3 epochs, 8
#: seeds of label_embedding, main at bab8be2): seeds side by side against --runs-per-device 1.
BATCHED_ON_GPU = "16x the runs per second of --runs-per-device 1 (8: 1.65x) on an H100"


def batched_hint(configs: list[RunConfig], batched: bool) -> str | None:
    """One line where ``compare`` trains on a GPU, without ``--batched``, seeds that could train
    side by side (a stackable method, equal settings): ``--batched`` is the faster way there."""
    device = configs[0].train.device
    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if batched or not on_gpu:
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


def make_executor(
    kind: Any = "local",
    *,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    runs_per_device: int = 1,
    ray_address: str | None = None,
) -> Any:
    """Where a grid's runs train (:mod:`labelemb.sweep.executors`): ``local`` (``jobs`` processes,
    on ``devices``) or ``ray`` (a cluster at ``ray_address``, or one started here); an executor
    made already is handed back as it is."""
    if not isinstance(kind, str):
        return kind
    if kind == "ray":
        # lazy: the ray extra, only for a grid that asks for Ray
        from ..sweep.ray_executor import RayExecutor

        if devices:
            # Ray, not the driver, picks each run's GPU on the cluster's nodes: a list of this
            # machine's devices would be a promise the command could not keep.
            raise ExecutorError(
                f"--devices {','.join(devices)} is for --executor local: under --executor ray, Ray "
                "picks each run's GPU on the cluster (--runs-per-device K shares one); drop --devices"
            )
        return RayExecutor(address=ray_address, runs_per_device=runs_per_device)
    if ray_address:
        raise ExecutorError("--ray-address is for --executor ray; add --executor ray or drop it")
    return LocalExecutor(jobs=jobs, devices=devices, runs_per_device=runs_per_device)
