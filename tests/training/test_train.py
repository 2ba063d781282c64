"""Tests of labelemb.training: determinism, resuming, the run folder, config errors, schedules.

Runs use the embedded digits with a 64-32 MLP for a few epochs, so each trains in well under a
second; the two real-data tests use small slices of MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers.repo_paths import CONFIGS
from helpers.run_checks import (
    assert_same_resumed_run,
    assert_same_weights,
    interrupt_at_first_checkpoint,
    load_weights,
    read_metrics,
    summary_numbers,
    untimed,
)
from safetensors.torch import load_file

from labelemb.config import parse_override
from labelemb.data import Dataset, Split, load_dataset
from labelemb.rundir import differing_keys
from labelemb.training import ConfigError, RunDirError, build_config, build_network, load_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ---------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a folder (hidden ones included) with its bytes."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def tmp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def subset(dataset: Dataset, train_n: int, dev_n: int, test_n: int) -> Dataset:
    def cut(split: Split, n: int) -> Split:
        return Split(split.images[:n].clone(), split.labels[:n].clone())

    assert dataset.dev is not None
    return Dataset(
        name=dataset.name,
        train=cut(dataset.train, train_n),
        dev=cut(dataset.dev, dev_n),
        test=cut(dataset.test, test_n),
        class_names=list(dataset.class_names),
    )


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_numbers_and_weights(small_config, digits, tmp_path):
    first = small_config("train.eval_every=400", output_dir=tmp_path / "a")
    second = small_config("train.eval_every=400", output_dir=tmp_path / "b")
    other_seed = small_config("train.eval_every=400", "seed=1", output_dir=tmp_path / "a")
    summaries = [train(c, dataset=digits) for c in (first, second, other_seed)]
    dir_a, dir_b, dir_c = (c.run_dir() for c in (first, second, other_seed))
    assert dir_a != dir_b and dir_a != dir_c

    records = untimed(read_metrics(dir_a))
    assert len(records) >= 4
    assert records == untimed(read_metrics(dir_b))
    assert summary_numbers(summaries[0]) == summary_numbers(summaries[1])
    assert_same_weights(load_weights(dir_a), load_weights(dir_b))

    other = untimed(read_metrics(dir_c))
    assert [r["step"] for r in other] == [r["step"] for r in records]
    assert [r["train_loss"] for r in other] != [r["train_loss"] for r in records]
    weights_c = load_weights(dir_c)
    weights_a = load_weights(dir_a)
    assert not torch.equal(weights_a["model.layers.1.weight"], weights_c["model.layers.1.weight"])
    assert not torch.equal(weights_a["method.embedding"], weights_c["method.embedding"])


# ---------------------------------------------------------------- resuming


@pytest.mark.parametrize(
    ("epoch", "where"),
    # 1,197 examples in 12 batches of 100, a check every 300 examples: epoch 0's first check is
    # after batch 3; epoch 1's (1,297 examples) after its batch 1, past the lr milestone.
    [(0, {"epoch": 0, "batch": 3, "step": 3}), (1, {"epoch": 1, "batch": 1, "step": 13})],
    ids=["first-checkpoint", "after-lr-milestone"],
)
def test_resume_after_a_mid_epoch_crash_matches_an_uninterrupted_run(
    small_config, digits, tmp_path, epoch, where
):
    # lr_milestones makes the scheduler's state matter after the crash too.
    overrides = ("train.epochs=3", "train.eval_every=300", "train.lr_milestones=[1]")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    total_checks = len(read_metrics(clean.run_dir()))

    at_crash = interrupt_at_first_checkpoint(crashed, digits, epoch=epoch)
    assert at_crash == where
    run_dir = crashed.run_dir()
    assert (run_dir / "checkpoint.pt").exists()
    assert not (run_dir / "summary.json").exists()
    checks_before = len(read_metrics(run_dir))
    assert checks_before == (1 if epoch == 0 else 4)

    steps_after_resume = []
    summary = train(crashed, dataset=digits, on_checkpoint=lambda p: steps_after_resume.append(p.step))
    # It went on from the checkpoint instead of starting over.
    assert len(steps_after_resume) == total_checks - checks_before
    assert steps_after_resume[0] > at_crash["step"]

    assert summary == json.loads((run_dir / "summary.json").read_text())
    assert_same_resumed_run(run_dir, clean.run_dir())


def test_sigkill_mid_run_then_rerun_matches_an_uninterrupted_run(tmp_path, digits):
    config_file = tmp_path / "kill.yaml"
    # 240 small steps per epoch, a check every 200 examples: many checkpoints, a second of work.
    config_file.write_text(
        yaml.safe_dump(
            {
                "experiment": "kill",
                "data": {"name": "digits"},
                "model": {"name": "mlp", "hidden": [32]},
                "method": {"name": "label_embedding"},
                "train": {"epochs": 2, "batch_size": 5, "eval_every": 200, "threads": 1},
            }
        )
    )
    killed_root = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "labelemb",
        "train",
        "--config",
        str(config_file),
        "--output-dir",
        str(killed_root),
        "--no-progress",
    ]
    run_dir = killed_root / "kill" / "label_embedding" / "seed0"
    checkpoint = run_dir / "checkpoint.pt"
    stderr_path = tmp_path / "killed.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while not checkpoint.exists():
                if process.poll() is not None:
                    pytest.fail(
                        f"the run ended (rc {process.returncode}) before a checkpoint was seen:\n"
                        + stderr_path.read_text()
                    )
                if time.monotonic() > deadline:
                    pytest.fail("no checkpoint.pt appeared within 120 s")
                time.sleep(0.002)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists(), "the kill came too late: the run had finished"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert 0 < state["progress"]["step"] < 480
    kept = state["progress"]["records"]
    assert kept

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "label_embedding seed 0:" in rerun.stdout
    # It resumed: the checks from before the kill are kept as they were, timings included
    # (a run started over would have measured new wall_seconds).
    assert read_metrics(run_dir)[: len(kept)] == kept

    clean = load_config(config_file, [f"output_dir={tmp_path / 'clean'}", "train.progress=false"])
    train(clean, dataset=digits)  # threads=1, as the one_thread fixture has it already
    assert_same_resumed_run(run_dir, clean.run_dir())


# ---------------------------------------------------------------- atomic files


def test_no_temporary_files_are_left_behind(small_config, digits, tmp_path):
    config = small_config("train.eval_every=300", output_dir=tmp_path / "a")
    interrupt_at_first_checkpoint(config, digits)
    assert tmp_files(config.run_dir()) == []
    train(config, dataset=digits)
    assert tmp_files(config.run_dir()) == []
    assert (config.run_dir() / "checkpoint.pt").exists()


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(small_config, digits, tmp_path, monkeypatch):
    clean = small_config("train.eval_every=300", output_dir=tmp_path / "clean")
    train(clean, dataset=digits)
    config = small_config("train.eval_every=300", output_dir=tmp_path / "broken")
    interrupt_at_first_checkpoint(config, digits)
    checkpoint = config.run_dir() / "checkpoint.pt"
    before = checkpoint.read_bytes()

    def half_write_then_fail(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        train(config, dataset=digits)
    assert checkpoint.read_bytes() == before
    assert tmp_files(config.run_dir()) == []

    monkeypatch.undo()
    train(config, dataset=digits)
    assert_same_resumed_run(config.run_dir(), clean.run_dir())


def test_run_files_get_ordinary_file_permissions(small_config, digits):
    """Run folders are meant to be read by others (colleagues, a results server): the files
    must get the permissions of any file the user creates (umask), not owner-only 0600."""
    config = small_config()
    train(config, dataset=digits)
    run_dir = config.run_dir()
    probe = run_dir.parent / "probe.txt"
    probe.write_text("x")
    expected = stat.S_IMODE(probe.stat().st_mode)
    modes = {name: oct(stat.S_IMODE((run_dir / name).stat().st_mode)) for name in os.listdir(run_dir)}
    assert modes == {name: oct(expected) for name in modes}


# ---------------------------------------------------------------- the run folder


def test_run_folder_holds_config_metrics_summary_and_representation(small_config, digits):
    config = small_config("train.eval_every=300")
    summary = train(config, dataset=digits)
    run_dir = config.run_dir()
    assert run_dir == Path(config.output_dir) / "small" / "label_embedding" / "seed0"
    assert {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "checkpoint.pt",
        "model.pt",
        "label_representation.safetensors",
    } <= set(os.listdir(run_dir))

    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config.model_dump(mode="json")

    records = read_metrics(run_dir)
    # Checks at the first batch end past each multiple of 300 examples, and at the very end
    # (1,197 training examples per epoch, batches of 100, 2 epochs).
    assert [r["examples"] for r in records] == [300, 600, 900, 1297, 1597, 1897, 2197, 2394]
    assert [r["step"] for r in records] == [3, 6, 9, 13, 16, 19, 22, 24]
    terms = {"train_loss", "train_ce_o1", "train_soft_o1", "train_ce_o2", "train_emb", "train_penalty"}
    previous_wall = 0.0
    for record in records:
        assert {"step", "epoch", "examples", "wall_seconds", "dev_error", "test_error"} | terms <= set(record)
        assert record["epoch"] == pytest.approx(record["examples"] / 1197)
        assert record["wall_seconds"] >= previous_wall
        previous_wall = record["wall_seconds"]
        for key in ("dev_error", "test_error"):  # percentages of 300 images
            assert 0.0 <= record[key] <= 100.0
            assert record[key] * 3 == pytest.approx(round(record[key] * 3))
        for key in terms:
            assert isinstance(record[key], float) and record[key] == record[key]  # not NaN

    assert summary == json.loads((run_dir / "summary.json").read_text())
    best_dev = min(r["dev_error"] for r in records)
    selected = next(r for r in records if r["dev_error"] == best_dev)  # first check at the lowest dev error
    assert summary["selection"] == "best_dev"
    assert summary["selected_test_error"] == selected["test_error"]
    assert summary["selected_step"] == selected["step"]
    assert summary["final_test_error"] == records[-1]["test_error"]
    assert summary["steps"] == 24 and summary["epochs"] == 2
    assert summary["seconds_per_epoch"] > 0
    assert summary["class_names"] == DIGIT_NAMES
    # 64-32 MLP (2,080) + o1 and o2 (330 each) + E (100).
    assert summary["num_parameters"] == 2080 + 330 + 330 + 100

    tensors = load_file(str(run_dir / "label_representation.safetensors"))
    assert set(tensors) == {"representation", "embedding"}
    representation, embedding = tensors["representation"], tensors["embedding"]
    assert representation.shape == (10, 10) and embedding.shape == (10, 10)
    assert (representation >= 0).all()
    assert torch.allclose(representation.sum(1), torch.ones(10), atol=1e-5)
    assert torch.allclose(torch.softmax(embedding, dim=1), representation, atol=1e-6)
    assert not torch.allclose(embedding, torch.eye(10))  # E was learned, not left at its init
    assert torch.equal(load_weights(run_dir)["method.embedding"], embedding)


def test_summary_selects_the_first_check_at_the_lowest_dev_error(small_config, digits):
    from labelemb.assembly.plan import plan_run
    from labelemb.training import Classification, Progress
    from labelemb.training.results import summarize

    def record(step, dev, test):
        return {
            "step": step,
            "epoch": step / 12,
            "examples": 100 * step,
            "dev_error": dev,
            "test_error": test,
        }

    records = [record(3, 20.0, 21.0), record(6, 9.0, 4.0), record(9, 12.0, 6.0), record(12, 9.0, 5.0)]
    progress = Progress(epoch=1, step=12, examples=1197, train_seconds=2.0, wall_seconds=3.0, records=records)
    task, cpu = Classification(), torch.device("cpu")
    best = summarize(plan_run(small_config("train.epochs=1")), progress, digits, task, cpu, 123)
    assert (best["selected_test_error"], best["selected_dev_error"], best["selected_step"]) == (4.0, 9.0, 6)
    assert (best["final_test_error"], best["final_dev_error"], best["steps"]) == (5.0, 9.0, 12)
    assert best["seconds_per_epoch"] == 2.0 and best["num_parameters"] == 123

    last = small_config("train.epochs=1", selection="final")
    final = summarize(plan_run(last), progress, digits, task, cpu, 123)
    assert final["selection"] == "final"
    assert (final["selected_test_error"], final["selected_step"]) == (5.0, 12)


def test_a_method_that_learns_no_representation_saves_its_class_mean_softmax(small_config, digits):
    from labelemb.analysis.representation import mean_softmax_representation, run_representation
    from labelemb.rundir import RunDir

    config = small_config("method.name=onehot")
    summary = train(config, dataset=digits)
    files = set(os.listdir(config.run_dir()))
    assert {"config.yaml", "metrics.jsonl", "summary.json", "model.pt"} <= files
    assert set(read_metrics(config.run_dir())[0]) >= {"train_loss", "train_ce"}
    # Saved when training ended, so analysis never needs the data: the same matrix as computing
    # it afterwards from the saved model on the dev split (what older runs still need).
    saved = RunDir(config.run_dir()).read_tensors()["representation"]
    assert summary["representation_source"] == "mean softmax on dev"
    computed, source = mean_softmax_representation(config.run_dir())
    assert source == "mean softmax on dev"
    torch.testing.assert_close(saved, computed, rtol=1e-5, atol=1e-6)
    assert saved.shape == (10, 10) and torch.allclose(saved.sum(1), torch.ones(10))
    rep = run_representation(config.run_dir(), data_dir="/nonexistent")  # the data is not read
    assert rep.source == "mean softmax on dev"


def test_rerunning_a_finished_run_returns_its_summary_without_training(small_config, digits, monkeypatch):
    from labelemb.assembly.parts import DataSource

    config = small_config()
    saved = train(config, dataset=digits)
    before = snapshot(config.run_dir())

    def no_data(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(DataSource, "load", no_data)
    again = small_config("train.progress=true")  # progress bars do not change results
    summary = train(again, on_checkpoint=no_data)
    assert summary == saved == json.loads((config.run_dir() / "summary.json").read_text())
    assert snapshot(config.run_dir()) == before


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "interrupted"])
def test_a_run_dir_with_a_different_config_is_refused_and_left_unchanged(small_config, digits, finished):
    config = small_config("train.eval_every=300")
    if finished:
        train(config, dataset=digits)
    else:
        interrupt_at_first_checkpoint(config, digits)
    before = snapshot(config.run_dir())
    changed = small_config("train.eval_every=300", "train.lr=0.002")
    assert changed.run_dir() == config.run_dir()
    with pytest.raises(RunDirError, match=r"different config.*train\.lr"):
        train(changed, dataset=digits)
    assert snapshot(config.run_dir()) == before


def test_a_checkpoint_of_a_different_model_is_refused(small_config, digits, tmp_path):
    wide = small_config("train.eval_every=300", "model.hidden=[32]", output_dir=tmp_path / "wide")
    narrow = small_config("train.eval_every=300", "model.hidden=[16]", output_dir=tmp_path / "narrow")
    interrupt_at_first_checkpoint(wide, digits)
    interrupt_at_first_checkpoint(narrow, digits)
    shutil.copyfile(wide.run_dir() / "checkpoint.pt", narrow.run_dir() / "checkpoint.pt")
    before = snapshot(narrow.run_dir())
    with pytest.raises(RunDirError, match="different model") as error:
        train(narrow, dataset=digits)
    assert "checkpoint.pt" in str(error.value)
    assert snapshot(narrow.run_dir()) == before


def test_a_checkpoint_of_a_different_method_is_refused(small_config, digits, tmp_path):
    onehot = small_config("train.eval_every=300", "method.name=onehot", output_dir=tmp_path / "a")
    embedding = small_config("train.eval_every=300", output_dir=tmp_path / "b")
    interrupt_at_first_checkpoint(onehot, digits)
    interrupt_at_first_checkpoint(embedding, digits)
    shutil.copyfile(onehot.run_dir() / "checkpoint.pt", embedding.run_dir() / "checkpoint.pt")
    with pytest.raises(RunDirError, match="different model, method or labelemb version"):
        train(embedding, dataset=digits)


def test_a_truncated_or_foreign_checkpoint_gives_a_clear_error(small_config, digits):
    config = small_config("train.eval_every=300")
    interrupt_at_first_checkpoint(config, digits)
    checkpoint = config.run_dir() / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunDirError, match="cannot read checkpoint") as error:
        train(config, dataset=digits)
    assert str(checkpoint) in str(error.value) and "delete it" in str(error.value)

    torch.save({"weights": torch.zeros(3)}, checkpoint)
    with pytest.raises(RunDirError, match="not a labelemb checkpoint"):
        train(config, dataset=digits)


# ---------------------------------------------------------------- config errors


def test_an_unknown_section_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_config({}, ["train.epoch=3"])
    message = str(error.value)
    assert "train.epoch" in message and "epochs" in message

    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  batch_sise: 10\n")
    with pytest.raises(ConfigError, match=r"train\.batch_sise.*batch_size"):
        load_config(path)
    assert issubclass(ConfigError, ValueError)


def test_an_unknown_top_level_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"'experimnt'.*'experiment'"):
        build_config({"experimnt": "x"})
    path = tmp_path / "top.yaml"
    path.write_text("experiment: x\nsede: 3\n")
    with pytest.raises(ConfigError, match="sede"):
        load_config(path)


def test_a_value_of_the_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"train\.epochs.*abc"):
        build_config({}, ["train.epochs=abc"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        build_config({}, ["train.epochs=0"])
    with pytest.raises(ConfigError, match="key=value"):
        build_config({}, ["train.epochs"])


def test_override_values_are_read_as_yaml_numbers_lists_and_null():
    assert parse_override("train.epochs=3") == ("train.epochs", 3)
    assert parse_override("train.lr_milestones=[1, 2]") == ("train.lr_milestones", [1, 2])
    assert parse_override("train.eval_every=null") == ("train.eval_every", None)
    config = build_config({}, ["tau=4", "model.hidden=[100]", "train.lr=0.002"])
    assert config.options("method") == {"tau": 4}
    assert config.options("model") == {"hidden": [100]}
    assert config.train.lr == 0.002


def test_scientific_notation_overrides_are_numbers():
    """parse_override's docstring promises ``1e-3`` works; PyYAML reads it as the string '1e-3',
    which is harmless for typed fields but reaches a method option (tau, alpha) as a string."""
    key, value = parse_override("alpha=1e-3")
    assert key == "alpha"
    assert isinstance(value, float) and value == pytest.approx(1e-3)
    config = build_config({}, ["tau=5e-1"])
    assert config.options("method") == {"tau": 0.5}


def test_unknown_method_option_or_name_fails_with_the_config_without_a_run_folder(small_config, digits):
    with pytest.raises(ConfigError, match="no option.*tau_x; did you mean tau"):
        small_config("method.tau_x=1")
    # A config made without build_config is checked by train before anything is written.
    bad_option = small_config().model_copy(deep=True)
    bad_option.method.tau_x = 1
    with pytest.raises(ValueError, match="tau_x"):
        build_network(bad_option, digits)
    with pytest.raises(ConfigError, match="tau_x"):
        train(bad_option, dataset=digits)
    # Nothing written: fixing the typo and rerunning must not be refused as "a different config".
    assert not bad_option.run_dir().exists()

    with pytest.raises(ConfigError, match=r"unknown method 'label_embeding'; did you mean 'label_embedding'"):
        small_config("method.name=label_embeding")
    with pytest.raises(ConfigError, match="unknown model 'mpl'; did you mean 'mlp'"):
        small_config("model.name=mpl")


def test_a_missing_or_malformed_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))


def test_the_repository_has_the_paper_configs():
    expected = {"mnist-mlp", "mnist-cnn", "fashion-mnist-mlp", "fashion-mnist-cnn"}
    assert {p.stem for p in CONFIG_FILES} >= expected


MNIST_CONFIGS = [p for p in CONFIG_FILES if re.fullmatch(r"(fashion-)?mnist-(mlp|cnn)", p.stem)]
CIFAR_CONFIGS = [p for p in CONFIG_FILES if p.stem.startswith("cifar")]


@pytest.mark.parametrize("path", CIFAR_CONFIGS, ids=lambda p: p.stem)
def test_cifar_configs_follow_the_papers_protocol(path):
    config = load_config(path)
    assert config.selection == "final" and config.train.epochs == 100 and config.train.batch_size == 128
    assert config.data.augment.crop_padding == 4 and config.data.augment.flip
    assert config.data.augment.mean == [0.4914, 0.4822, 0.4465]
    assert config.data.augment.std == [0.2023, 0.1994, 0.2010]
    classes = 10 if config.data.name == "cifar10" else 100
    fake = Dataset(
        name=config.data.name,
        train=Split(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64)),
        dev=None,
        test=Split(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64)),
        class_names=[str(i) for i in range(classes)],
    )
    model, method = build_network(config, fake)
    assert model.out_features == (2048 if config.model.name == "resnet8" else 1024)
    assert config.train.lr_milestones == ([40, 80] if classes == 100 else [])


def test_the_repository_has_the_cifar_configs():
    assert {p.stem for p in CIFAR_CONFIGS} == {"cifar10-resnet8", "cifar100-resnet18"}


@pytest.mark.parametrize("path", MNIST_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_builds(path):
    config = load_config(path)
    assert config.experiment == path.stem
    assert config.data.name in path.stem
    assert config.model.name == path.stem.rsplit("-", 1)[1]
    # The paper's protocol (DESIGN.md): Adam 1e-3, batch 100, 15 epochs, check every 11,000.
    assert (config.train.lr, config.train.batch_size, config.train.epochs) == (1e-3, 100, 15)
    assert config.train.eval_every == 11000 and config.selection == "best_dev"
    fake = Dataset(
        name=config.data.name,
        train=Split(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64)),
        dev=None,
        test=Split(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64)),
        class_names=[str(i) for i in range(10)],
    )
    model, method = build_network(config, fake)
    assert model.out_features == (500 if config.model.name == "mlp" else 1024)
    assert method.name == "label_embedding"
    assert method.logits(model(fake.train.images)).shape == (2, 10)


def test_the_fashion_mnist_files_config_is_the_named_sets_protocol_on_files():
    files = load_config(CONFIGS / "fashion-mnist-files.yaml")
    named = load_config(CONFIGS / "fashion-mnist-mlp.yaml")
    assert files.data.name == "files" and files.data.files.format == "imagefolder"
    assert files.data.files.class_names == load_fashion_mnist_class_names()
    for section in ("model", "method", "train"):
        assert getattr(files, section) == getattr(named, section), section


@pytest.mark.parametrize("name", ["lwal-mnist-efficientnet", "lwal-fashion-mnist-efficientnet"])
def test_the_lwal_configs_are_the_papers_table_1_protocol(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.name == name.removeprefix("lwal-").removesuffix("-efficientnet")
    assert (config.model.name, config.options("model")) == ("efficientnet_lite0", {"pretrained": True})
    # Adam 1e-3 for EfficientNet, 50 images per class in a batch, 10 epochs; LWR5k.
    assert (config.train.lr, config.train.batch_size, config.train.epochs) == (1e-3, 500, 10)
    assert config.methods["lwr"] == {"k": 5}
    assert 55_000 % config.train.batch_size == 0  # no last batch of one image (batch norm)


def load_fashion_mnist_class_names() -> list[str]:
    from labelemb.data.mnist import FASHION_MNIST

    return list(FASHION_MNIST.class_names)


# ---------------------------------------------------------------- fixed embedding, schedule


def test_label_embedding_fixed_trains_on_a_learned_embedding(small_config, digits, tmp_path):
    learned = small_config(output_dir=tmp_path / "learned")
    train(learned, dataset=digits)
    embedding = load_file(str(learned.run_dir() / "label_representation.safetensors"))["embedding"]

    fixed = small_config(
        "method.name=label_embedding_fixed",
        f"method.embedding={learned.run_dir()}",
        output_dir=tmp_path / "fixed",
    )
    summary = train(fixed, dataset=digits)
    assert summary["method"] == "label_embedding_fixed"
    assert 0.0 <= summary["final_test_error"] <= 100.0
    record = read_metrics(fixed.run_dir())[-1]
    assert {"train_loss", "train_ce_o1", "train_soft_o1"} <= set(record)

    weights = load_weights(fixed.run_dir())
    table = weights["method.soft_label_table"]
    assert torch.allclose(table, torch.softmax(embedding, dim=-1), atol=1e-7)
    assert not any(key.startswith("method.o2") for key in weights)  # o2 is removed
    saved = load_file(str(fixed.run_dir() / "label_representation.safetensors"))
    assert torch.allclose(saved["representation"], table, atol=1e-7)
    assert yaml.safe_load((fixed.run_dir() / "config.yaml").read_text())["method"]["embedding"] == str(
        learned.run_dir()
    )


def test_lr_milestones_multiply_the_learning_rate_after_that_epoch(small_config, digits):
    config = small_config("train.lr_milestones=[1]", "train.lr_gamma=0.2", "train.eval_every=600")
    checks = []

    def read_lr(progress) -> None:
        state = torch.load(config.run_dir() / "checkpoint.pt", map_location="cpu", weights_only=True)
        checks.append((progress.epoch, progress.step, [g["lr"] for g in state["optimizer"]["param_groups"]]))

    train(config, dataset=digits, on_checkpoint=read_lr)
    # Checks at steps 6 (epoch 0), 13 and 19 (epoch 1), 24 (the end).
    assert [(epoch, step) for epoch, step, _ in checks] == [(0, 6), (1, 13), (1, 19), (2, 24)]
    assert checks[0][2] == [pytest.approx(1e-3)]
    for _, _, lrs in checks[1:]:
        assert lrs == [pytest.approx(2e-4)]


# ---------------------------------------------------------------- the real datasets


def test_mnist_mlp_config_learns_on_a_slice_of_real_mnist(mnist_dir, tmp_path):
    full = load_dataset("mnist", data_dir=mnist_dir, download=False)
    data = subset(full, 2000, 500, 500)
    config = load_config(
        CONFIGS / "mnist-mlp.yaml",
        [
            f"output_dir={tmp_path}",
            "model.hidden=[64]",
            "train.epochs=2",
            "train.eval_every=1000",
            "train.progress=false",
        ],
    )
    summary = train(config, dataset=data)
    assert summary["dataset"] == "mnist"
    records = read_metrics(config.run_dir())
    assert len(records) == 4
    assert records[-1]["test_error"] < records[0]["test_error"]
    # Chance is 90 %; 2,000 images for two epochs get well below it.
    assert summary["final_test_error"] < 40.0


def test_fashion_mnist_cnn_config_trains_on_a_slice_of_real_fashion_mnist(fashion_mnist_dir, tmp_path):
    full = load_dataset("fashion-mnist", data_dir=fashion_mnist_dir, download=False)
    assert full.class_names[0] == "T-shirt/top"
    data = subset(full, 300, 100, 100)
    config = load_config(
        CONFIGS / "fashion-mnist-cnn.yaml",
        [
            f"output_dir={tmp_path}",
            "model.channels=[8, 16]",
            "model.hidden=64",
            "train.epochs=1",
            "train.progress=false",
        ],
    )
    summary = train(config, dataset=data)
    assert summary["dataset"] == "fashion-mnist" and summary["model"] == "cnn"
    assert summary["class_names"] == full.class_names
    assert len(read_metrics(config.run_dir())) == 1  # eval_every 11,000 > 300: only the final check
    assert 0.0 <= summary["final_test_error"] < 90.0


# ---------------------------------------------------------------- augmentation and precision

AUGMENTED = (
    "model.name=cnn",
    "model.hidden=32",
    "data.augment.crop_padding=1",
    "data.augment.flip=true",
    "data.augment.mean=[0.3]",
    "data.augment.std=[0.4]",
    "train.eval_every=300",
)


def test_augmented_run_resumes_with_the_same_random_crops(small_config, digits, tmp_path):
    """The augmentation generator is checkpointed: a resumed run draws the crops it would have."""
    clean = small_config(*AUGMENTED, output_dir=tmp_path / "clean")
    crashed = small_config(*AUGMENTED, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    interrupt_at_first_checkpoint(crashed, digits, epoch=0)
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())
    plain = small_config(
        "model.name=cnn", "model.hidden=32", "train.eval_every=300", output_dir=tmp_path / "plain"
    )
    train(plain, dataset=digits)
    assert untimed(read_metrics(plain.run_dir())) != untimed(read_metrics(clean.run_dir()))


def test_bf16_autocast_and_channels_last_train(small_config, digits, tmp_path):
    config = small_config(*AUGMENTED, "train.precision=bf16", "train.channels_last=true", output_dir=tmp_path)
    summary = train(config, dataset=digits)
    assert 0.0 <= summary["final_test_error"] < 90.0
    assert config.train.precision == "bf16"


def test_train_compile_runs_backbone_and_method_compiled_with_the_eager_numbers(
    small_config, digits, tmp_path, monkeypatch
):
    """``train.compile=true`` compiles backbone and method; the run matches the eager one.

    ``torch.compile`` is pointed at the ``aot_eager`` backend (traced graphs, eager kernels): it
    checks our side (the method traces, the label check stays out, state and logging work)
    without a C++ compiler. Counting calls through the compiled modules shows they run the steps.
    """
    compiled = []
    calls: dict[str, int] = {}
    real_compile = torch.compile

    def compile_with_aot_eager(module, **kwargs):
        name = type(module).__name__
        compiled.append(name)
        calls[name] = 0
        wrapper = real_compile(module, backend="aot_eager")
        wrapper.register_forward_pre_hook(lambda *_: calls.__setitem__(name, calls[name] + 1))
        return wrapper

    monkeypatch.setattr(torch, "compile", compile_with_aot_eager)
    torch._dynamo.reset()
    eager = small_config(output_dir=tmp_path / "eager")
    with_compile = small_config("train.compile=true", output_dir=tmp_path / "compiled")
    eager_summary = train(eager, dataset=digits)
    compiled_summary = train(with_compile, dataset=digits)
    assert compiled == ["MLP", "LabelEmbedding"]
    steps = compiled_summary["steps"]
    assert calls["LabelEmbedding"] == steps  # every training step ran the compiled method
    assert calls["MLP"] >= steps  # and the compiled backbone (evaluation uses it too)
    for key in ("selected_test_error", "final_test_error", "selected_step"):
        assert compiled_summary[key] == pytest.approx(eager_summary[key], abs=0.34), key  # 1 test image
    last_eager, last_compiled = read_metrics(eager.run_dir())[-1], read_metrics(with_compile.run_dir())[-1]
    assert last_compiled["train_loss"] == pytest.approx(last_eager["train_loss"], rel=1e-4)
    assert (with_compile.run_dir() / "label_representation.safetensors").is_file()


def test_a_dataset_without_a_dev_split_trains_and_reports_the_final_check(small_config, digits):
    """CIFAR has no dev split: checks record the test error only, selection falls to the last check."""
    from labelemb.data import Dataset

    no_dev = Dataset(digits.name, digits.train, None, digits.test, digits.class_names)
    config = small_config("train.progress=true")  # the progress bar shows only the metrics there are
    summary = train(config, dataset=no_dev)
    records = read_metrics(config.run_dir())
    assert all("dev_error" not in record for record in records)
    assert summary["selection"] == "final" and summary["selected_dev_error"] is None
    assert summary["selected_test_error"] == records[-1]["test_error"] == summary["final_test_error"]


# ---------------------------------------------------------------- the backbone's learning rate


def test_the_backbone_trains_at_its_own_learning_rate(small_config):
    from labelemb.assembly.build import Network, make_optimizer, parameter_groups

    fake = Dataset(
        name="digits",
        train=Split(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])),
        dev=None,
        test=Split(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])),
        class_names=[str(i) for i in range(10)],
    )
    for overrides, backbone_lr in ((["model.lr_scale=0.1"], 1e-4), (["model.lr=0.05"], 0.05)):
        config = small_config("train.lr=0.001", *overrides)
        assert "lr" not in config.options("model") and "lr_scale" not in config.options("model")
        model, method = build_network(config, fake)
        network = Network(model, method)
        groups = make_optimizer(config, parameter_groups(config, network.named_parameters())).param_groups
        assert [g["lr"] for g in groups] == pytest.approx([backbone_lr, 0.001])
        assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters()}
        assert {id(p) for p in groups[1]["params"]} == {id(p) for p in method.parameters()}
    plain = small_config()
    assert plain.backbone_lr() is None
    named = Network(*build_network(plain, fake)).named_parameters()
    assert len(make_optimizer(plain, parameter_groups(plain, named)).param_groups) == 1
    with pytest.raises(ConfigError, match="give model.lr or model.lr_scale, not both"):
        small_config("model.lr=0.01", "model.lr_scale=0.1")


#: What a converged variant changes from its short config: its name, the ceiling and early stopping
#: (None before, so the whole key differs) and label embedding's warm-up.
BUDGET = {"experiment", "train.epochs", "train.early_stopping", "methods.label_embedding.soft_warmup"}


# A converged text variant is read against the config its header names: the keys it may change are
# listed here as in its header, and nothing else may differ, or its table says less than it claims.
@pytest.mark.parametrize(
    ("short", "long", "changed"),
    [
        ("ddtp-en-it", "ddtp-en-it-converged", BUDGET),
        ("ddtp-summarize", "ddtp-summarize-converged", BUDGET),
        (
            "ddtp-summarize-converged",
            "ddtp-summarize-converged-15k",
            {"experiment", "data.max_train_pairs", "train.eval_every", "train.epochs"}
            | {"train.early_stopping.patience", "methods.label_embedding.soft_warmup"},
        ),
        ("ddtp-summarize-converged-15k", "ddtp-summarize-converged-15k-24ep", {"experiment", "train.epochs"}),
        (
            "ddtp-en-it-converged",
            "ddtp-en-it-converged-15k",
            {"experiment", "data.max_train_pairs", "train.eval_every", "train.epochs"}
            | {"methods.label_embedding.soft_warmup"},
        ),
    ],
)
def test_converged_text_configs_change_only_what_their_headers_say(short, long, changed):
    long_file = CONFIGS / f"{long}.yaml"
    assert f"configs/{short}.yaml" in long_file.read_text(encoding="utf-8").split("\nexperiment:")[0]
    before = load_config(CONFIGS / f"{short}.yaml").model_dump(mode="json")
    assert differing_keys(before, load_config(long_file).model_dump(mode="json")) == changed
