"""train, compare and tune without --config use the demo's own setting, as their help says: its
experiment, its backbone and training, and its OOD set."""

from __future__ import annotations

import pytest
import yaml

from labelemb.cli import build_parser, main
from labelemb.demo_config import DEMO_CONFIG
from labelemb.training import build_config

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_without_a_config_trains_the_demos_setting(tmp_path, capsys):
    assert main(["train", "--method", "onehot", "--output-dir", str(tmp_path), "train.epochs=1"]) == 0
    saved = yaml.safe_load((tmp_path / "demo-digits-mlp" / "onehot" / "seed0" / "config.yaml").read_text())
    demo = build_config(DEMO_CONFIG, ["method.name=onehot", "train.epochs=1", f"output_dir={tmp_path}"])
    assert saved == demo.model_dump(mode="json")
    assert saved["ood"][0]["data"] == "patches"  # judged as the demo judges its runs
    assert "OOD patches" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "compare", "tune"])
def test_the_help_names_the_setting_used_without_a_config(command):
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    option = next(a for a in subparsers.choices[command]._actions if "--config" in a.option_strings)
    assert "the digits demo setting" in option.help


def test_on_another_data_set_the_demos_ood_set_is_left_out_unless_named():
    from labelemb.experiment import base_config

    assert [entry.data for entry in base_config(None, []).ood] == ["patches"]
    assert base_config(None, ["data.name=mnist"]).ood == []
    assert [e.data for e in base_config(None, ["data.name=mnist", "ood=[{data: fashion-mnist}]"]).ood] == [
        "fashion-mnist"
    ]
