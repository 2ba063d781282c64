"""The whole experiment in Python (issue 80): labelemb.demo, compare, train, evaluate and summarize
do what the commands do. The commands call them, so the tables are the same bytes: checked over the
same run folders (a table holds training seconds, which no two trainings share)."""

from __future__ import annotations

from pathlib import Path

import pytest

import labelemb
from labelemb.cli import main
from labelemb.experiment import Comparison
from labelemb.experiment.setting import keyword_overrides, seed_numbers

QUICK = ["train.epochs=2", "model.hidden=[32]"]


def test_the_demo_in_python_prints_what_the_command_prints(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["demo", "--seeds", "0", "--epochs", "2", "--output-dir", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    shown = labelemb.demo([0], epochs=2, output_dir=str(out), progress=False)
    assert (
        capsys.readouterr().out == "training onehot on the bundled digits, seed 0 ...\n"
        "training label_embedding on the bundled digits, seed 0 ...\n"
    )
    assert printed.endswith(shown.to_text() + "\n")
    assert "| onehot |" in shown.knowing_table and shown.heatmap.is_file()
    assert shown.experiment_dir == out / "demo-digits-mlp"


def test_a_compare_in_python_writes_the_command_s_tables_byte_for_byte(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["compare", "--methods", "onehot,label_smoothing", "--seeds", "0,1", "--output-dir", str(out)]
    assert main([*argv, "--no-progress", *QUICK]) == 0, capsys.readouterr().err
    terminal = capsys.readouterr().out
    folder = out / "demo-digits-mlp"
    written = {name: (folder / name).read_bytes() for name in ("comparison.md", "comparison.csv")}

    result = labelemb.compare(
        methods="onehot, label_smoothing",  # a list, or a text as the command line takes it
        seeds="0-1",  # a list, one seed, or a text as the command line takes it
        output_dir=str(out),
        train={"epochs": 2},
        model={"hidden": [32]},
        progress=False,
    )
    assert isinstance(result, Comparison) and result.ok
    assert {name: (folder / name).read_bytes() for name in written} == written
    assert (result.to_markdown() + "\n").encode() == written["comparison.md"]
    assert result.to_csv().encode() == written["comparison.csv"]
    assert terminal.startswith(result.short)
    assert [row["method"] for row in result.rows] == ["onehot", "label_smoothing"]
    assert result.runs == {
        m: [folder / m / "seed0", folder / m / "seed1"] for m in ("onehot", "label_smoothing")
    }
    assert {"curves.png", "curves-seconds.png", "ranks.png"} <= set(result.figures)
    assert all(path.is_file() for path in result.figures.values())
    # Read again without training: the same tables.
    assert labelemb.summarize(folder).to_markdown() == result.to_markdown()


def test_train_and_evaluate_in_python(tmp_path):
    out = tmp_path / "runs"
    trained = labelemb.train(
        seeds=0, output_dir=str(out), train={"epochs": 2}, model={"hidden": [32]}, progress=False
    )
    run_dir = out / "demo-digits-mlp" / "label_embedding" / "seed0"  # the config's method
    assert trained.run_dirs == [run_dir] and trained.summaries[0]["seed"] == 0 and not trained.lacking
    assert trained.lines()[0].startswith("label_embedding seed 0: selected test error ")
    judged = labelemb.evaluate(run_dir, progress=False)
    assert judged.folders == [run_dir] and judged.comparison is None
    assert "OOD patches: AUROC" in judged.lines()[0]
    assert judged.records[0]["test"]["selective_msp_aurc"] > 0


def test_seeds_are_a_list_one_seed_or_the_command_line_s_text():
    assert (
        seed_numbers("0-2,7") == [0, 1, 2, 7] and seed_numbers(3) == [3] and seed_numbers(range(2)) == [0, 1]
    )
    with pytest.raises(ValueError, match="seed range '4-1' is reversed"):
        seed_numbers("4-1")
    with pytest.raises(ValueError, match="must look like 3, 0-19 or 0,2,5"):
        labelemb.compare(methods="onehot", seeds="first")


def test_keywords_are_overrides_a_section_a_mapping():
    assert keyword_overrides({"train": {"epochs": 3, "device": "cpu"}, "tau": 4, "ood": []}) == [
        "train.epochs=3",
        'train.device="cpu"',
        "tau=4",
        "ood=[]",
    ]


def test_a_mapping_config_and_its_mistakes(tmp_path):
    with pytest.raises(ValueError, match="compare needs methods"):
        labelemb.compare(methods=[])
    with pytest.raises(labelemb.training.ConfigError, match="epochz"):
        labelemb.train({"data": {"name": "digits"}, "train": {"epochz": 1}}, output_dir=str(tmp_path))
    assert not list(Path(tmp_path).iterdir())
