"""What a tuning request is: the experiment's config, its methods, what is searched and judged,
checked before anything trains; and the configs of its trials and of its tuned settings' fresh runs.

A trial's run folder is ``<experiment>/tuning/trial<NNN>/<method>/seed<S>``; the best setting's fresh
runs go to ``<experiment>/tuned/trial<NNN>``. How the studies run is :mod:`labelemb.tuning.study`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import methods
from ..assembly import data_request
from ..callbacks import Callbacks, with_defaults
from ..config import (
    RUN_CONTEXT_OPTIONS,
    RunConfig,
    build_config,
    config_keys,
    no_method_takes,
    top_level_keys,
)
from ..data.registry import data_fingerprint, dataset_yields
from ..metrics.figures import Figure, figure_of, objectives
from ..metrics.recalibration import MAPS
from ..search_spaces import Space, SpaceError, check_space, combine
from ..tasks import dev_objective, task_class
from ..tasks.calibration import RecalibrationOptions
from .trial import TuneError

#: The folder of an experiment that holds its trials and its study (``<experiment>/tuning``).
TUNING_FOLDER = "tuning"


#: The folder of an experiment that holds its tuned settings' runs (``<experiment>/tuned``).
TUNED_FOLDER = "tuned"


JOURNAL_FILE = "study.journal"


#: ``tune --objective``: what a trial is judged on -> the dev record key (None: the task's own
#: dev score, :func:`~labelemb.tasks.dev_objective`). The others are the figures declared as
#: objectives (:func:`labelemb.metrics.figures.objectives`): the dev NLL, the ECE after temperature
#: scaling or after a richer post-hoc map (cross-fitted on dev: the trials' configs name the map
#: in ``recalibration.dev_maps``) and the AURC of the max-softmax confidence, each recorded by a
#: classifier at the checks that can be selected; which way is better, as each declaration says.
OBJECTIVES: dict[str, str | None] = {"metric": None, **objectives()}


@dataclass
class TuneSetting:
    """A tuning request: the experiment's config, its methods and what is searched.

    ``spaces`` are the command line's keys (a dotted config key applies to every method, a bare
    option to the methods that have it); ``tune_seed`` is the seed of every trial run and seeds the
    sampler; ``storage`` a database URL, or None for the journal file in the experiment folder.
    """

    base: RunConfig
    methods: list[str]
    trials: int
    spaces: dict[str, Space] = field(default_factory=dict)
    tune_seed: int = 0
    prune: bool = False
    storage: str | None = None
    #: What a trial is judged on (:data:`OBJECTIVES`): the task's dev score, a calibration figure
    #: or the dev AURC.
    objective_kind: str = "metric"
    #: Trials of a method trained side by side in one process (their settings stacked as seeds are;
    #: :class:`~labelemb.training.stacked.StackedSettings`), per executor slot; 1: a process each.
    batched_trials: int = 1

    @property
    def folder(self) -> Path:
        """The experiment's tuning folder: its trials' runs and its journal."""
        return Path(self.base.output_dir) / self.base.experiment / TUNING_FOLDER

    @property
    def storage_text(self) -> str:
        """The study store as workers open it: the database URL, or the journal file's path."""
        return self.storage or str((self.folder / JOURNAL_FILE).resolve())

    def method_config(self, method: str) -> RunConfig:
        """The base config for ``method`` at the tuning seed (the default setting): a config of its
        own, made as any config is (:func:`~labelemb.config.build_config`: checked, one line
        a mistake), in the base config's folder."""
        values = self.base.with_method(method).with_seed(self.tune_seed).model_dump(mode="json")
        return build_config(values).model_copy(update={"source_folder": self.base.source_folder})

    def space(self, method: str) -> dict[str, Space]:
        """What a trial of ``method`` draws: its own space and the command line's keys that apply to it."""
        config = self.method_config(method)
        own = methods.search_space(method, config.options("method"))
        accepted = methods.options(method)
        given = {key: space for key, space in self.spaces.items() if "." in key or key in accepted}
        return combine(own, given)

    def study_name(self, method: str) -> str:
        return f"{self.base.experiment}:{method}"

    def objective(self) -> tuple[tuple[str, ...], bool]:
        """The dev score every trial is judged by (its record keys) and whether higher is better: the
        one that selects a run's check, as the experiment's task says
        (:func:`~labelemb.tasks.dev_objective`)."""
        yields = dataset_yields(self.base.data.name, self.base.data_sections())
        task = task_class(yields)
        if self.objective_kind == "metric":
            return dev_objective(task, self.base.selection_metric)
        key = OBJECTIVES[self.objective_kind]
        if key not in getattr(task, "selected_fields", ()):
            raise TuneError(
                f"--objective {self.objective_kind}: runs of {task.__name__} record no "
                f"{key.replace('_', ' ')} (a classifier's dev figures); use --objective metric"
            )
        # Which way is better is the figure's declaration's (each of these: lower).
        return (key,), not _declared(key).lower_is_better


def _declared(key: str) -> Figure:
    """The declaration of a dev record's ``key`` (:func:`~labelemb.metrics.figures.figure_of`)."""
    declared = figure_of(key)
    if declared is None:
        raise TuneError(f"{key} is no declared figure (labelemb.metrics.figures)")
    return declared


def check_setting(setting: TuneSetting) -> None:
    """Refuse, before anything is written or trained, what cannot be tuned: one line a problem."""
    if setting.objective_kind not in OBJECTIVES:
        raise TuneError(f"--objective {setting.objective_kind}: choose one of {', '.join(OBJECTIVES)}")
    setting.objective()  # an objective the task cannot give: one line, here
    if setting.trials < 1:
        raise TuneError(f"--trials {setting.trials}: give a positive number of trials, e.g. --trials 20")
    # What every run's callbacks need (a tracker train.log_to names, and its package), before a study.
    Callbacks(with_defaults()).check([setting.base])
    if setting.batched_trials > 1 and setting.prune:
        raise TuneError(
            "--prune stops trials one at a time, --batched-trials trains them together: use one of them"
        )
    keys = config_keys()
    bare = [key for key in setting.spaces if "." not in key and key not in keys]
    for key in bare:
        if not any(key in methods.options(method) for method in setting.methods):
            raise TuneError(f"--space {key}: {no_method_takes(key, setting.methods, keys)}")
    for method in setting.methods:
        config = setting.method_config(method)
        given = config.options("method")
        fixed_here = {k: v for k, v in given.items() if k not in RUN_CONTEXT_OPTIONS}
        build = methods.method_builder(method, **fixed_here)
        try:
            check_space(
                method,
                setting.space(method),
                keys,
                methods.options(method),
                fixed=methods.preset_options(method),
                run_context=RUN_CONTEXT_OPTIONS,
                build=build,
            )
        except SpaceError as error:
            raise TuneError(str(error)) from None
        _check_config_bounds(method, config, setting.space(method))


def _check_config_bounds(method: str, config: RunConfig, spaces: Mapping[str, Space]) -> None:
    """Each bound of a searched config key is a value the config accepts (``train.batch_size=0:64``
    is refused here, not in the trial that draws 0)."""
    for key, space in spaces.items():
        if "." not in key and key not in top_level_keys():
            continue
        for bound in space.bounds():
            try:
                apply_values(config, {key: bound})
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                raise TuneError(
                    f"method {method!r}: --space {key}={space}: the config does not accept {key}={bound!r} "
                    f"({reason}); keep the range inside what {key} accepts"
                ) from None


def setting_record(setting: TuneSetting, method: str) -> dict[str, Any]:
    """What a study's trials depend on, recorded with the study (as JSON holds it): the method's
    default config (its comparable part), the searched space, the tuning seed and pruning, and the
    content digest of the data where its loader has one (a user's files: an edited file makes the
    finished trials' scores stale)."""
    config = setting.method_config(method)
    record: dict[str, Any] = {
        "config": config.comparable(),
        "space": {key: str(space) for key, space in sorted(setting.space(method).items())},
        "tune_seed": setting.tune_seed,
        "prune": setting.prune,
    }
    if setting.objective_kind != "metric":
        # Only when not the default, so that studies recorded before the option still match.
        record["objective"] = setting.objective_kind
    fingerprint = data_fingerprint(config.data.name, data_request(config))
    if fingerprint is not None:
        record["data"] = fingerprint
    return json.loads(json.dumps(record))


def default_values(setting: TuneSetting, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values of ``method``'s default setting for its searched keys, as a trial takes them, and
    what was changed to fit the space: ``{key: {"default": value, "used": value or None}}``. A
    number outside its range is clamped to the nearest bound (the searched range is where the user
    asked trials to be); a value the space cannot hold (None, a choice not listed) is left out, and
    the sampler draws it."""
    config = setting.method_config(method)
    raw = config.model_dump(mode="json")
    own = {**methods.options(method), **config.options("method")}
    values: dict[str, Any] = {}
    adjusted: dict[str, Any] = {}
    for key, space in sorted(setting.space(method).items()):
        if "." in key or key in top_level_keys():
            default = raw
            for part in key.split("."):
                default = default.get(part) if isinstance(default, dict) else None
        else:
            default = own.get(key)
        if default in space:
            values[key] = default
            continue
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if space.kind == "categorical" or not numeric:
            adjusted[key] = {"default": default, "used": None}
            continue
        used = min(max(default, space.low), space.high)
        used = int(round(used)) if space.kind == "int" else float(used)
        values[key] = used
        adjusted[key] = {"default": default, "used": used}
    return values, json.loads(json.dumps(adjusted))


def apply_values(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with each value set: a dotted key in its section, a bare one as a method option."""
    raw = config.model_dump(mode="json")
    for key, value in values.items():
        parts = key.split(".") if "." in key or key in top_level_keys() else ["method", key]
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return RunConfig.model_validate({**raw, "source_folder": config.source_folder})


def trial_config(setting: TuneSetting, method: str, values: Mapping[str, Any], number: int) -> RunConfig:
    """The config of trial ``number`` of ``method``: its values over the default, in its own folder."""
    config = apply_values(setting.method_config(method), values)
    experiment = f"{setting.base.experiment}/{TUNING_FOLDER}/trial{number:03d}"
    return config.model_copy(update={"experiment": experiment, **recorded_maps(setting)})


def recorded_maps(setting: TuneSetting) -> dict[str, Any]:
    """A trial config's ``recalibration:`` section where the objective is a map's dev ECE (the
    trial then records it at its checks); nothing otherwise."""
    name = setting.objective_kind.removeprefix("ece_")
    if not setting.objective_kind.startswith("ece_") or name not in MAPS:
        return {}

    return {RecalibrationOptions.section: RecalibrationOptions(dev_maps=[name])}


def tuned_experiment(experiment: str, best_trial: int) -> str:
    """Where the best setting's fresh runs go: ``<experiment>/tuned/trial<NNN>``, named after the
    trial whose values they train with, so that a later, larger budget whose best is another trial
    writes beside them instead of meeting runs of another config."""
    return f"{experiment}/{TUNED_FOLDER}/trial{best_trial:03d}"


def tuned_config(
    setting: TuneSetting, method: str, values: Mapping[str, Any], best_trial: int, seed: int
) -> RunConfig:
    """The config of ``method``'s best setting (trial ``best_trial``'s values) at fresh ``seed``."""
    config = apply_values(setting.method_config(method), values).with_seed(seed)
    experiment = tuned_experiment(setting.base.experiment, best_trial)
    return config.model_copy(update={"experiment": experiment})
