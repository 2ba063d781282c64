"""Tests of the ``labelemb`` command (in-process through ``labelemb.cli.main``, plus one call of
the installed entry point) and of the readable error for labels outside the class range."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import labelemb
from labelemb.arguments import parse_seeds
from labelemb.cli import main
from labelemb.methods import LabelRangeError
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text``."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory, digits, one_thread):
    """A finished label_embedding run and a finished onehot run on digits."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {}
    for method in ("label_embedding", "onehot"):
        config = build_config(
            {
                "experiment": "cli",
                "output_dir": str(root),
                "model": {"name": "mlp", "hidden": [32]},
                "method": {"name": method},
                "train": {"epochs": 2, "progress": False},
            }
        )
        train(config, dataset=digits)
        dirs[method] = config.run_dir()
    return dirs


# ---------------------------------------------------------------- demo


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--seeds", "0-1", "--epochs", "3", "--output-dir", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out

    results, knowing = text.split("Knowing when it is wrong", 1)
    rows = {row[0]: row for row in table_rows(results) if row[0] in ("onehot", "label_embedding")}
    assert set(rows) == {"onehot", "label_embedding"}
    for row in rows.values():
        assert row[1] == "2"  # seeds
        assert "±" in row[2] and "±" in row[3]
        mean, std = (float(x) for x in row[2].split("±"))
        assert 0.0 <= mean <= 100.0 and std >= 0.0
    # The selected weights judged beyond their error, the photo patches as the OOD set.
    knowing = knowing.split("Most similar labels", 1)[0]
    assert table_rows(knowing)[0] == ["method", "AURC %", "patches AUROC % (MSP)", "APS set size (90 %)"]
    judged = {row[0]: row for row in table_rows(knowing) if row[0] in ("onehot", "label_embedding")}
    assert set(judged) == {"onehot", "label_embedding"}
    for row in judged.values():
        aurc, auroc, size = (float(cell.split("±")[0]) for cell in row[1:])
        assert 0.0 <= aurc <= 100.0 and 0.0 <= auroc <= 100.0 and 0.0 <= size <= 10.0

    figure = out / "demo-digits-mlp" / "label_similarity.png"
    assert figure.is_file()
    data = figure.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000

    assert "Most similar labels" in text
    similar = text.split("Most similar labels", 1)[1]
    rows = table_rows(similar)
    assert rows[0] == ["label", "#1", "#2", "#3"]
    assert [row[0] for row in rows[2:]] == DIGIT_NAMES
    for seed in (0, 1):
        for method in ("onehot", "label_embedding"):
            assert (out / "demo-digits-mlp" / method / f"seed{seed}" / "summary.json").is_file()
            assert (out / "demo-digits-mlp" / method / f"seed{seed}" / "evaluation.json").is_file()
    assert not (out / "demo-digits-mlp" / "onehot" / "seed2").exists()


def test_demo_with_a_bad_seed_list_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    try:
        code = main(["demo", "--seeds", "4-1", "--output-dir", str(tmp_path), "--no-progress"])
    except SystemExit as exit_:  # argparse rejecting the value is fine too
        code = exit_.code
    assert code == 2
    assert "seeds" in capsys.readouterr().err


# ---------------------------------------------------------------- train


def test_train_with_a_config_file_seeds_and_overrides(tmp_path, capsys):
    config_file = tmp_path / "small.yaml"
    config_file.write_text(
        "experiment: cli-small\n"
        "data:\n  name: digits\n"
        "model:\n  name: mlp\n  hidden: [16]\n"
        "method:\n  name: label_embedding\n"
        "train:\n  epochs: 2\n"
    )
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--config",
            str(config_file),
            "--seeds",
            "0-1",
            "--output-dir",
            str(out),
            "--no-progress",
            "tau=3",
            "train.lr=0.002",
            "alpha=0.8",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("label_embedding seed")]
    assert len(lines) == 2
    for seed, line in enumerate(lines):
        run_dir = out / "cli-small" / "label_embedding" / f"seed{seed}"
        assert line.startswith(f"label_embedding seed {seed}: selected test error ")
        assert line.endswith(str(run_dir))
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert saved["seed"] == seed
        assert saved["method"] == {"name": "label_embedding", "tau": 3, "alpha": 0.8}
        assert saved["model"] == {
            "name": "mlp",
            "lr": None,
            "lr_scale": None,
            "dense": None,
            "freeze": False,
            "hidden": [16],
        }
        assert saved["train"]["lr"] == 0.002 and saved["train"]["epochs"] == 2
        assert saved["train"]["progress"] is False
    assert any(row[:2] == ["label_embedding", "2"] for row in table_rows(captured.out))


def test_train_with_one_seed_and_a_method(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--method",
            "onehot",
            "--seed",
            "3",
            "--output-dir",
            str(out),
            "--no-progress",
            "experiment=one",
            "model.hidden=[16]",
            "train.epochs=1",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("onehot seed 3: ")
    assert (out / "one" / "onehot" / "seed3" / "summary.json").is_file()


def test_options_may_come_after_overrides(tmp_path, capsys):
    """``labelemb train model.hidden=[16] --seed 1 train.epochs=1``: overrides on both sides of an
    option, as users type them (appending ``--seed 1`` to a previous command)."""
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "experiment=mixed",
            "model.hidden=[16]",
            "--seed",
            "1",
            "--method",
            "onehot",
            "train.epochs=1",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    saved = yaml.safe_load((out / "mixed" / "onehot" / "seed1" / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["model"]["hidden"] == [16]


@pytest.mark.parametrize("command", ["compare", "tune"])
def test_a_list_of_methods_or_devices_may_have_spaces_and_a_trailing_comma(command):
    """Before, `--methods "onehot, label_embedding"` asked for the method ' label_embedding'."""
    from labelemb.cli import build_parser

    args = build_parser().parse_args(
        [command, "--methods", " onehot, label_embedding ,", "--devices", "cuda:0, cuda:1,"]
    )
    assert args.methods == ["onehot", "label_embedding"]
    assert args.devices == ["cuda:0", "cuda:1"]


def test_compare_gives_a_bare_option_to_the_methods_that_take_it(tmp_path, capsys):
    """``epsilon=0.2`` in a comparison of onehot (no epsilon) and label_smoothing, and in one of
    label_smoothing alone: the config's own method (the default, label_embedding, which has no
    epsilon and is not compared) is not asked to take it (before: "method 'onehot' has no
    option(s) epsilon", then "method 'label_embedding' has no option(s) epsilon")."""
    from labelemb.training import load_config

    out = tmp_path / "out"
    quick = ["--output-dir", str(out), "--no-progress", "epsilon=0.2", "model.hidden=[8]", "train.epochs=1"]
    assert main(["compare", "--methods", "onehot, label_smoothing", *quick]) == 0, capsys.readouterr().err
    assert main(["compare", "--methods", "label_smoothing", *quick, "experiment=alone"]) == 0

    def options(experiment: str, method: str) -> dict:
        return load_config(out / experiment / method / "seed0" / "config.yaml").options("method")

    demo = "demo-digits-mlp"  # the experiment of compare without --config: the demo's setting
    assert (
        options(demo, "label_smoothing")["epsilon"] == options("alone", "label_smoothing")["epsilon"] == 0.2
    )
    assert "epsilon" not in options(demo, "onehot")


@pytest.mark.parametrize(
    ("methods", "override", "expected"),
    [
        (
            "onehot,ols",
            "epochs=3",
            "none of the methods onehot, ols has an option 'epochs'; did you mean the "
            "config key 'train.epochs'?",
        ),
        (
            "onehot,ols",
            "alpah=0.5",
            "none of the methods onehot, ols has an option 'alpah'; did you mean 'alpha'?",
        ),
        (
            "onehot,lwr",
            "epochs=3",
            "epochs=3 is ambiguous: 'epochs' is an option of lwr and the last part of the config key "
            "'train.epochs'; write train.epochs=3 for the config, or methods.lwr.epochs=3 for the method",
        ),
    ],
    ids=["config-key", "misspelt-option", "ambiguous"],
)
def test_a_bare_key_no_compared_method_takes_or_that_is_ambiguous_is_one_line(
    tmp_path, capsys, methods, override, expected
):
    out = tmp_path / "out"
    code = main(["compare", "--methods", methods, "--output-dir", str(out), "--no-progress", override])
    err = capsys.readouterr().err
    assert code == 2 and err == f"labelemb compare: error: {expected}\n"
    assert not out.exists()


def test_parse_seeds():
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5-6") == [0, 2, 5, 6]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.epoch=3"], ["train.epoch", "epochs"]),
        (["train.batch_size=abc"], ["train.batch_size", "abc"]),
        (["--method", "onehot", "tau=3"], ["method 'onehot' has no option(s) tau"]),
        (["--method", "label_embeding"], ["unknown method", "label_embeding"]),
    ],
    ids=["unknown-key", "wrong-type", "unknown-method-option", "unknown-method"],
)
def test_a_bad_config_exits_2_with_the_error_on_stderr(tmp_path, capsys, overrides, expected):
    out = tmp_path / "out"
    code = main(
        ["train", "--output-dir", str(out), "--no-progress", *overrides, "model.hidden=[8]", "train.epochs=1"]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("labelemb train: error: ")
    for word in expected:
        assert word in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists() or not any(out.rglob("config.yaml"))


def test_the_installed_entry_point_reports_a_bad_key_with_exit_code_2(tmp_path):
    script = Path(sys.executable).parent / "labelemb"
    if not script.exists():
        found = shutil.which("labelemb")
        if found is None:
            pytest.fail("the `labelemb` command is not installed: run `pip install -e .` in the repository")
        script = Path(found)
    env = {k: v for k, v in os.environ.items() if k != "LABELEMB_DATA"}
    result = subprocess.run(
        [str(script), "train", "train.epoch=3", "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "train.epoch" in result.stderr and "epochs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- similar


def test_similar_prints_every_class_with_its_neighbours(finished_runs, capsys):
    code = main(["similar", str(finished_runs["label_embedding"]), "--top", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = table_rows(captured.out)
    assert rows[0] == ["label", "#1", "#2"]
    assert set(rows[1]) <= {"---", ""}
    assert [row[0] for row in rows[2:]] == DIGIT_NAMES
    for row in rows[2:]:
        assert len(row) == 3
        neighbours = [cell.split(" (")[0] for cell in row[1:]]
        assert row[0] not in neighbours and set(neighbours) <= set(DIGIT_NAMES)
        for cell in row[1:]:
            assert 0.0 <= float(cell.split("(")[1].rstrip(")")) <= 1.0


def test_similar_on_an_onehot_run_uses_the_mean_softmax_and_says_so(finished_runs, capsys):
    code = main(["similar", str(finished_runs["onehot"]), "--top", "2"])
    captured = capsys.readouterr()
    assert code == 0
    assert "onehot learns no label representation: using the mean softmax on dev" in captured.out
    assert captured.out.count("| nine |") == 1


def similar_rows(run_dir, capsys, *options) -> dict[str, list[str]]:
    code = main(["similar", str(run_dir), "--top", "3", *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return {row[0]: row[1:] for row in table_rows(captured.out)[2:]}


def test_similar_labels_prints_only_the_named_labels_with_their_full_table_rows(finished_runs, capsys):
    everything = similar_rows(finished_runs["label_embedding"], capsys)
    named = similar_rows(finished_runs["label_embedding"], capsys, "--labels", "three, eight")
    assert list(named) == ["three", "eight"]
    assert named == {name: everything[name] for name in named}
    # a run without a learned representation: rows of its class-mean softmax
    everything = similar_rows(finished_runs["onehot"], capsys)
    assert similar_rows(finished_runs["onehot"], capsys, "--labels", "nine") == {"nine": everything["nine"]}


def test_similar_labels_of_a_compressed_embedding_come_from_its_rows_of_softmax_e(digits, tmp_path, capsys):
    """``--labels`` forms softmax(ReLU(A[y] B + c)) for the named labels only; it must agree with the
    soft-label table the run saved (small enough here to be saved whole)."""
    config = build_config(
        {
            "experiment": "compressed",
            "output_dir": str(tmp_path),
            "model": {"name": "mlp", "hidden": [16]},
            "method": {"name": "label_embedding", "compressed_dim": 4},
            "train": {"epochs": 1, "progress": False},
        }
    )
    train(config, dataset=digits)
    everything = similar_rows(config.run_dir(), capsys)
    named = similar_rows(config.run_dir(), capsys, "--labels", "zero,seven")
    assert named == {name: everything[name] for name in ("zero", "seven")}


def test_similar_labels_names_a_label_the_run_lacks(finished_runs, capsys):
    code = main(["similar", str(finished_runs["label_embedding"]), "--labels", "three,eigth"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "--labels: the run has no label 'eigth'; did you mean eight?" in captured.err


def test_similar_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    code = main(["similar", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert str(tmp_path) in captured.err and "not a finished run" in captured.err


# ---------------------------------------------------------------- labels out of range


def test_label_embedding_names_a_label_outside_the_class_range():
    head = labelemb.LabelEmbedding(4, 3)
    features = torch.randn(3, 4)
    with pytest.raises(LabelRangeError) as error:
        head(features, torch.tensor([0, 3, 1]))
    message = str(error.value)
    assert "[3]" in message and "num_classes=3" in message
    assert isinstance(error.value, ValueError)
    out = head(features, torch.tensor([0, 2, 1]))
    assert out.logits.shape == (3, 3) and out.loss.dim() == 0


def test_onehot_names_a_negative_label_but_accepts_ignore_index():
    head = labelemb.OneHot(4, 3)
    features = torch.randn(3, 4)
    with pytest.raises(LabelRangeError) as error:
        head(features, torch.tensor([0, -1, 2]))
    message = str(error.value)
    assert "[-1]" in message and "num_classes=3" in message and "ignore_index=-100" in message
    out = head(features, torch.tensor([0, -100, 2]))
    assert torch.isfinite(out.loss)
    with pytest.raises(LabelRangeError, match=r"\[3\]"):
        labelemb.LabelEmbedding(4, 3)(features, torch.tensor([-100, 3, 0]))


def test_train_and_compare_batched_match_one_after_another(tmp_path, capsys):
    common = [
        "--method",
        "label_embedding",
        "--seeds",
        "0-1",
        "--no-progress",
        "model.hidden=[16]",
        "train.epochs=2",
    ]
    assert main(["train", *common, "--output-dir", str(tmp_path / "a")]) == 0
    assert main(["train", *common, "--batched", "--output-dir", str(tmp_path / "b")]) == 0
    for seed in (0, 1):
        run = f"demo-digits-mlp/label_embedding/seed{seed}/summary.json"
        one = json.loads((tmp_path / "a" / run).read_text())
        two = json.loads((tmp_path / "b" / run).read_text())
        assert two["batched_seeds"] == 2
        assert abs(one["selected_test_error"] - two["selected_test_error"]) <= 100 / 300 + 1e-9
    code = main(
        [
            "compare",
            "--methods",
            "onehot,label_embedding",
            "--seeds",
            "0-1",
            "--batched",
            "--no-progress",
            "--output-dir",
            str(tmp_path / "c"),
            "model.hidden=[16]",
            "train.epochs=2",
        ]
    )
    assert code == 0
    assert "| label_embedding | 2 |" in capsys.readouterr().out
