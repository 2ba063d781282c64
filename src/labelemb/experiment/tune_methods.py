"""``labelemb.tune``: the same tuning budget for every method, then its best setting on fresh seeds,
as ``labelemb tune`` runs it."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.tuning import TUNING_FILE, values_text, write_tuning
from ..rundir import write_text
from ..search_spaces import INSTALL_HINT, parse_space
from ..steps import prepared
from ..sweep.failures import RunsFailed
from ..sweep.grid import run_grid
from ..tracking import log_table
from ..tuning import STARTUP_TRIALS, TuneError, Tuner, TuneSetting, check_setting, study_record, tuned_config
from .judging import evaluate_trained
from .needs import check_needed_data, read_training_data
from .running import Overrides, call_settings, make_executor
from .setting import ConfigSource, Seeds, method_names, method_settings, seed_numbers, typed_config


@dataclass(repr=False)
class Tuning:
    """What :func:`tune` leaves: tuning.md's table, the tuning.json record (each method's space,
    trials and best setting), the experiment folder, the fresh runs that failed and those that
    trained but could not be judged. A notebook shows it as its table; a shell, as one line."""

    table: str
    record: dict[str, Any]
    experiment_dir: Path
    failed: list[Any] = field(default_factory=list)
    lacking: list[tuple[Path, str]] = field(default_factory=list)

    def to_markdown(self) -> str:
        """tuning.md's table."""
        return self.table

    def _repr_markdown_(self) -> str:
        return self.table

    def __repr__(self) -> str:
        # Short: the dataclass's own repr printed every trial of the record.
        record = self.record
        failed = f", failed={len(self.failed)}" if self.failed else ""
        lacking = f", lacking={len(self.lacking)}" if self.lacking else ""
        return (
            f"Tuning(methods={list(record.get('methods', {}))}, trials={record.get('trials')}, "
            f"seeds={record.get('seeds')}, experiment_dir={str(self.experiment_dir)!r}{failed}{lacking})"
        )


def tune(
    config: ConfigSource = None,
    *,
    methods: str | Sequence[str],
    trials: int = 20,
    spaces: Mapping[str, Any] | None = None,
    tune_seed: int = 0,
    seeds: Seeds = (1, 2, 3, 4, 5),
    objective: str = "metric",
    prune: bool = False,
    storage: str | None = None,
    batched_trials: int = 1,
    retry_running: bool = False,
    batched: bool = False,
    executor: Any = "local",
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    runs_per_device: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    overrides: Overrides = (),
    **options: Any,
) -> Tuning:
    """Tune each method with ``trials`` trials on ``tune_seed`` (Optuna's TPE; ``spaces`` adds keys
    searched besides each method's own, ``{"train.lr": "1e-4:1e-2:log"}``), then train its default
    and its best setting on the fresh ``seeds``. ``config``, ``executor`` (and its options),
    ``seeds`` (whole numbers, a range), ``overrides`` (a mapping of dotted config keys) and the
    keywords as for :func:`~labelemb.experiment.running.compare`, each set on the typed config as it
    is given, a bare method option going to the methods that take it."""
    try:
        # lazy: the tune extra, asked for by the one call that needs it
        import optuna  # noqa: F401
    except ImportError:
        raise TuneError(INSTALL_HINT) from None
    methods, seeds = method_names(methods), seed_numbers(seeds)
    if not methods:
        raise TuneError("tune needs --methods (e.g. onehot,label_embedding,label_smoothing)")
    # The config is checked as the first method's: the file's own method may lack their options.
    base = typed_config(config, method_settings(call_settings(overrides, options, progress), methods))
    check_needed_data([base.with_method(method) for method in methods])
    if tune_seed in seeds:
        raise TuneError(
            f"--seeds {','.join(map(str, seeds))} holds the tuning seed {tune_seed}: the best "
            "settings are judged on fresh seeds; give seeds without it (e.g. --seeds 1-5) or another "
            "--tune-seed"
        )
    read_training_data([base])  # a mistake in the data: one line, not one failure per trial
    # The config's steps (clean:) before its trials: every trial and fresh seed trains on what they make.
    base = prepared(base)
    setting = TuneSetting(
        base=base,
        methods=list(dict.fromkeys(methods)),
        trials=trials,
        spaces=searched_spaces(spaces or {}),
        tune_seed=tune_seed,
        prune=prune,
        storage=storage,
        batched_trials=batched_trials,
        objective_kind=objective,
    )
    check_setting(setting)  # every method's space and config, before anything is written
    executor = make_executor(
        executor, jobs=jobs, devices=devices, runs_per_device=runs_per_device, ray_address=ray_address
    )
    slots = len(executor.slots()) if hasattr(executor, "slots") else jobs
    # Opens the study store: a URL that does not answer stops here.
    tuner = Tuner(setting, executor, slots, retry_running)
    tuner.check_studies()  # every method's study, before any of them trains
    experiment_dir = Path(base.output_dir) / base.experiment
    record = _first_record(setting, tuner, seeds)
    with executor.session():  # the workers (or the cluster) serve every round and the fresh seeds
        failed, lacking = _tune_and_retrain(setting, tuner, record, seeds, batched, progress)
    table = write_tuning(experiment_dir)
    if base.train.log_to:
        log_table(base, experiment_dir, "tuning")  # the table beside the trials and runs in each tracker
    return Tuning(table, record, experiment_dir, [] if failed is None else list(failed.failed), lacking)


def searched_spaces(spaces: Mapping[str, Any]) -> dict[str, Any]:
    """Each key's space: a :class:`~labelemb.search_spaces.Space` as it is, a text read as ``--space``
    reads it (``"1e-4:1e-2:log"``, ``"64|128"``)."""
    return {
        key: parse_space(f"{key}={value}")[1] if isinstance(value, str) else value
        for key, value in spaces.items()
    }


def _first_record(setting: TuneSetting, tuner: Tuner, seeds: list[int]) -> dict[str, Any]:
    """tuning.json before any method is tuned: the objective, seeds, budget and sampler."""
    dev_keys, higher = tuner.dev_keys, tuner.higher
    return {
        "experiment": setting.base.experiment,
        "objective": {
            "keys": list(dev_keys),
            "name": " or ".join(key.replace("_", " ") for key in dev_keys),
            "higher_is_better": higher,
        },
        "tune_seed": setting.tune_seed,
        "seeds": seeds,
        "trials": setting.trials,
        "sampler": {"name": "TPE", "startup_trials": STARTUP_TRIALS},
        "prune": setting.prune,
        "storage": "journal" if setting.storage is None else "database",
        "methods": {},
    }


def _tune_and_retrain(
    setting: TuneSetting,
    tuner: Tuner,
    record: dict[str, Any],
    seeds: list[int],
    batched: bool,
    progress: bool,
) -> tuple[RunsFailed | None, list[tuple[Path, str]]]:
    """Each method tuned, then its default and tuned settings trained on the fresh seeds; the
    fresh runs that failed, if any (the others are trained and evaluated), and the runs that lack
    figures."""
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
        study = tuner.tune(method, on_round=_round_line if progress else None, on_wait=_wait_line)
        record["methods"][method] = study_record(study, setting, method)
        best = record["methods"][method]
        score = "-" if best["best_value"] is None else f"{best['best_value']:.2f}"
        values = values_text(best["best_params"]) + (
            " (its default setting)" if best["best_is_default"] else ""
        )
        print(f"{method}: best {record['objective']['name']} {score} with {values}", flush=True)
    write_text(experiment_dir / TUNING_FILE, json.dumps(record, indent=1) + "\n")
    defaults = [base.with_method(m).with_seed(s) for m in setting.methods for s in seeds]
    tuned = [
        tuned_config(setting, m, record["methods"][m]["best_params"], record["methods"][m]["best_trial"], s)
        for m in setting.methods
        if setting.space(m)
        for s in seeds
    ]
    try:
        # The grid checks every setting before any of them trains.
        run_grid([*defaults, *tuned], progress=progress, batched=batched, executor=tuner.executor)
    except RunsFailed as error:
        failed = error  # the fresh runs that finished are evaluated and tabled all the same
    return failed, evaluate_trained([*defaults, *tuned], progress)


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
