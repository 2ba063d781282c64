"""The Python API's typed arguments (issue 102, part 3): a config as a file, a mapping or a typed
RunConfig, seeds as whole numbers, overrides as a mapping of dotted keys set on the config as they
are given, never written out as ``key=value`` texts to be read again. These build the configs
``labelemb.compare`` trains (``compared_configs``) without training them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.repo_paths import ROOT

import labelemb
from labelemb.config import ConfigError, RunConfig, load_config, read_config_file
from labelemb.experiment import DEMO_CONFIG
from labelemb.experiment.running import call_settings, compared_configs
from labelemb.experiment.setting import override_settings, seed_numbers, typed_config

TEXTS = ["train.epochs=2", "model.hidden=[32]", "epsilon=0.2", "seed=3"]
METHODS = ["onehot", "label_smoothing"]


def as_the_command_line_gives_them() -> tuple[RunConfig, list[RunConfig]]:
    """The configs of ``labelemb compare --methods onehot,label_smoothing --seeds 0-1 TEXTS``."""
    return compared_configs(None, "onehot,label_smoothing", "0-1", call_settings(TEXTS, {}, progress=False))


def test_a_typed_config_with_a_mapping_of_overrides_gives_the_command_line_s_runs():
    base, configs = as_the_command_line_gives_them()
    typed = RunConfig(**DEMO_CONFIG)  # the typed config, as a user builds it
    overrides = {"train.epochs": 2, "epsilon": 0.2, "seed": 3}
    keywords = {"model": {"hidden": (32,)}}  # a keyword's mapping: keys of its section
    typed_base, typed_configs = compared_configs(
        typed, METHODS, range(2), call_settings(overrides, keywords, progress=False)
    )
    assert [c.comparable() for c in typed_configs] == [c.comparable() for c in configs]
    assert [(c.method.name, c.seed) for c in typed_configs] == [(m, s) for m in METHODS for s in (0, 1)]
    # The bare option went to the method that takes it, not to onehot.
    assert typed_base.methods == {"label_smoothing": {"epsilon": 0.2}}
    assert typed_configs[0].options("method") == {} and typed_configs[2].options("method") == {"epsilon": 0.2}
    assert typed_base.model.model_extra == {"hidden": [32]} and typed_base.train.progress is False
    assert typed_base.source_folder == str(Path.cwd())  # relative file names: the user's folder


def test_a_typed_config_keeps_what_its_backbone_decides_and_its_own_folder():
    """A RunConfig is set as it was given, not with its defaults: a bag-of-words config that gives
    no train.lr trains at the backbone's own rate (1e-2), as its file would, not at Adam's 1e-3."""
    file = ROOT / "configs" / "debian-sections.yaml"
    raw = read_config_file(file)
    del raw["train"]
    assert typed_config(RunConfig(**raw)).train.lr == typed_config(raw).train.lr == 1e-2
    read = load_config(file)
    assert typed_config(read, {"train.epochs": 1}) == load_config(file, ["train.epochs=1"])
    assert typed_config(file, {"train.epochs": 1}) == load_config(file, ["train.epochs=1"])
    assert typed_config(read).source_folder == str(file.parent.resolve())


def test_settings_are_set_as_given_and_never_read_back_from_text(monkeypatch):
    def refused(text: str) -> None:
        raise AssertionError(f"{text!r} was written as a key=value text and read again")

    monkeypatch.setattr("labelemb.config.reading.parse_override", refused)
    monkeypatch.setattr("labelemb.experiment.setting.parse_override", refused)
    settings = call_settings({"model.hidden": (32,), "data.dir": Path("here")}, {"train": {"lr": 0.01}}, True)
    base, configs = compared_configs(None, ["onehot"], np.arange(2), settings)
    assert base.model.model_extra == {"hidden": [32]} and base.data.dir == "here" and base.train.lr == 0.01
    assert [c.seed for c in configs] == [0, 1] and all(type(c.seed) is int for c in configs)


def test_the_command_line_s_texts_are_read_once_the_last_of_a_key_winning_where_it_came():
    assert override_settings(["train.epochs=3", "tau=4", "train.epochs=5"]) == {"tau": 4, "train.epochs": 5}
    kept = typed_config(None, override_settings(["train={lr: 0.1}", "train.epochs=5"]))
    assert (kept.train.lr, kept.train.epochs) == (0.1, 5)
    replaced = typed_config(None, override_settings(["train.epochs=5", "train={lr: 0.1}"]))
    assert (replaced.train.lr, replaced.train.epochs) == (0.1, 15)  # the section given anew
    # A mapping of overrides sets a section as a whole too; a keyword's sets keys of it.
    assert typed_config(None, {"train": {"lr": 0.1}}).train.epochs == 15
    assert typed_config(None, call_settings({}, {"train": {"lr": 0.1}}, True)).train.epochs == 30


def test_seeds_are_whole_numbers_one_an_iterable_or_the_command_line_s_text():
    assert seed_numbers(range(5)) == [0, 1, 2, 3, 4] and seed_numbers(np.int64(3)) == [3]
    assert seed_numbers(s for s in (4, 2)) == [4, 2] and seed_numbers("0-2,7") == [0, 1, 2, 7]
    for wrong in ([0, 1.5], [True], ["1"], 2.0):
        with pytest.raises(ValueError, match="is not a whole number: give seeds as 3, "):
            seed_numbers(wrong)


def test_what_is_not_config_data_is_one_line_before_anything_is_read(tmp_path):
    with pytest.raises(ValueError, match="setting train.epochs: its value, of type object, is not config"):
        labelemb.compare(methods=["onehot"], overrides={"train.epochs": object()}, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"overrides='train.epochs=3': give a mapping such as"):
        labelemb.train(overrides="train.epochs=3", output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="did you mean 'epsilon'"):
        labelemb.compare(methods=METHODS, overrides={"epsilom": 0.2}, output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="config key 'experiment.x': 'experiment' is not a section"):
        typed_config(None, {"experiment.x": 1})
    assert not list(tmp_path.iterdir())


def test_another_data_set_named_by_a_section_mapping_drops_the_demo_s_ood_set_as_the_dotted_key_does():
    # The photo patches are the digits' out-of-distribution set, no other data set's.
    assert typed_config(None, {"data.name": "mnist"}).ood == []
    assert typed_config(None, {"data": {"name": "mnist"}}).ood == []
    assert typed_config(None, {"data": {"name": "digits"}}).ood == typed_config(None).ood != []


class Stop(Exception):
    """Ends a tune once its setting is built: what these tests look at, before any trial."""


def tuned_setting(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> object:
    """The TuneSetting ``labelemb.tune(*args, **kwargs)`` builds, checked, before it trains."""
    built = []

    def caught(setting: object) -> None:
        built.append(setting)
        raise Stop

    monkeypatch.setattr("labelemb.experiment.tune_methods.check_setting", caught)
    with pytest.raises(Stop):
        labelemb.tune(*args, **kwargs)
    return built[0]


def test_tune_sets_a_mapping_and_its_keywords_on_the_typed_config_as_the_command_line_does(
    monkeypatch, tmp_path
):
    from labelemb.cli import main

    handed = {}

    def stand_in(config: object, **kwargs: object) -> SimpleNamespace:
        handed.update(kwargs, config=config)
        return SimpleNamespace(table="", experiment_dir=tmp_path, failed=[], lacking=[])

    monkeypatch.setattr("labelemb.cli.tune.tune", stand_in)
    argv = ["tune", "--methods", "onehot,label_smoothing", "--seeds", "1-2", "--output-dir", str(tmp_path)]
    assert main([*argv, "--no-progress", "train.epochs=2", "model.hidden=[32]", "epsilon=0.2"]) == 0
    monkeypatch.undo()

    def refused(text: str) -> None:
        raise AssertionError(f"{text!r} was written as a key=value text and read again")

    monkeypatch.setattr("labelemb.config.reading.parse_override", refused)
    monkeypatch.setattr("labelemb.experiment.setting.parse_override", refused)
    by_command = tuned_setting(monkeypatch, **handed)
    typed = tuned_setting(
        monkeypatch,
        RunConfig(**DEMO_CONFIG),
        methods=METHODS,
        seeds=range(1, 3),
        overrides={"train.epochs": 2, "epsilon": 0.2, "output_dir": str(tmp_path)},
        model={"hidden": (32,)},
        progress=False,
    )
    assert typed.base.comparable() == by_command.base.comparable()
    # The config is checked as the first method's; the bare option went to the method that takes it.
    assert typed.base.method.name == "onehot" and typed.base.methods == {"label_smoothing": {"epsilon": 0.2}}
    assert typed.base.model.model_extra == {"hidden": [32]} and typed.base.train.progress is False
    assert not list(tmp_path.iterdir())  # nothing written before the setting is checked
