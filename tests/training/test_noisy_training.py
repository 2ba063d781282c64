"""Training on noisy labels: what a run records (the noise, its memorisation curve, the figures of
its selected and last weights), on a case built by hand and on the bundled digits."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from helpers.batched_checks import train_batched
from helpers.run_checks import interrupt_at_first_checkpoint, read_metrics
from safetensors.torch import load_file

from labelemb.metrics.noise import detection_figures, memorisation_figures
from labelemb.training import train
from labelemb.training.memorisation import TrainingPredictions

NOISE = {"kind": "symmetric", "rate": 0.3, "seed": 11}


def test_the_training_predictions_give_memorisation_by_hand():
    noisy = torch.tensor([0, 1, 2, 0, 1])
    clean = torch.tensor([0, 2, 2, 1, 1])  # examples 1 and 3 are wrongly labelled
    table = TrainingPredictions(2, noisy, clean, torch.device("cpu"))
    logits = torch.zeros(2, 3, 3)
    # Run 0 predicts examples 1, 3, 4 as 1, 0, 1: both wrong labels fitted. Run 1 predicts 2, 2, 0:
    # example 1 as its true class, example 3 neither.
    logits[0, torch.arange(3), torch.tensor([1, 0, 1])] = 5.0
    logits[1, torch.arange(3), torch.tensor([2, 2, 0])] = 5.0
    table.record(torch.tensor([[1, 3, 4], [1, 3, 4]]), logits)
    first, second = table.figures()
    assert first == {"train_memorised": 100.0, "train_flipped_correct": 0.0}
    assert second == {"train_memorised": 0.0, "train_flipped_correct": 50.0}
    # An unseen wrongly labelled example does not count until a step has seen it.
    table = TrainingPredictions(1, noisy, clean, torch.device("cpu"))
    table.record(torch.tensor([1]), torch.tensor([[0.0, 3.0, 0.0]]))
    assert table.figures()[0]["train_memorised"] == 100.0


def test_memorisation_and_detection_figures_by_hand():
    noisy = torch.tensor([0, 1, 1, 0])
    clean = torch.tensor([0, 1, 0, 1])  # examples 2 and 3 wrongly labelled
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.5, 0.0]])
    figures = memorisation_figures(logits, noisy, clean)
    assert figures == {"memorised": 100.0, "flipped_correct": 0.0, "clean_fit": 100.0}
    # Losses against the noisy labels: log(1 + e^-2), log(1 + e^-1), log(1 + e^-3), log(1 + e^-0.5):
    # the wrong labels' losses rank 4th and 2nd of 4: one of the four (wrong, right) pairs ordered.
    detected = detection_figures(logits, noisy, clean)
    assert detected["detect_auroc_loss"] == pytest.approx(50.0)
    assert detected["detect_auroc_margin"] == pytest.approx(50.0)
    assert math.isnan(detection_figures(logits, noisy, noisy)["detect_auroc_loss"])


def test_a_noisy_run_records_its_noise_and_what_it_did(small_config, digits, tmp_path):
    config = small_config("method.name=onehot", "train.epochs=3", noise=NOISE)
    summary = train(config, dataset=digits)
    folder = config.run_dir()
    recorded = summary["data"]["noise"]
    assert recorded["kind"] == "symmetric" and recorded["seed"] == 11
    kept = load_file(str(folder / "label_noise.safetensors"))
    flipped = kept["train_clean"] != kept["train_noisy"]
    assert torch.equal(kept["train_clean"].long(), digits.train.labels)  # the fixture stays clean
    assert recorded["realised_rate"]["train"] == pytest.approx(100 * float(flipped.float().mean()), abs=1e-3)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= record["train_memorised"] <= 100 for record in records)
    assert summary["selected_test_error"] < 50  # judged on the clean test labels, still learnt
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert checkpoint["training_predictions"].shape == (len(digits.train),)


def test_every_seed_and_method_trains_on_the_same_wrong_labels(small_config, digits, tmp_path):
    kept = []
    for overrides in (("method.name=onehot", "seed=0"), ("method.name=label_smoothing", "seed=3")):
        config = small_config(*overrides, "train.epochs=1", noise=NOISE)
        train(config, dataset=digits)
        kept.append(load_file(str(config.run_dir() / "label_noise.safetensors")))
    assert torch.equal(kept[0]["train_noisy"], kept[1]["train_noisy"])
    assert torch.equal(kept[0]["dev_noisy"], kept[1]["dev_noisy"])


def test_seeds_trained_side_by_side_record_their_own_memorisation(small_config, digits):
    configs = [
        small_config("method.name=onehot", f"seed={seed}", "train.epochs=2", noise=NOISE) for seed in (0, 1)
    ]
    batched = train_batched(configs, dataset=digits)
    alone = small_config(
        "method.name=onehot",
        "seed=1",
        "train.epochs=2",
        noise=NOISE,
        output_dir=configs[0].output_dir + "-alone",
    )
    train(alone, dataset=digits)
    records = [
        [
            json.loads(line)["train_memorised"]
            for line in (c.run_dir() / "metrics.jsonl").read_text().splitlines()
        ]
        for c in (configs[1], alone)
    ]
    assert len(batched) == 2
    assert records[0] == pytest.approx(records[1], abs=1e-6)


def test_the_evaluation_of_a_noisy_run_judges_its_training_split(small_config, tmp_path):
    config_path = tmp_path / "noisy.yaml"
    config_path.write_text(
        "experiment: noisy\ndata: {name: digits}\nmodel: {name: mlp, hidden: [32]}\nmethod: {name: onehot}\n"
        f"output_dir: {tmp_path / 'runs'}\ntrain: {{epochs: 2, progress: false}}\n"
        "noise: {kind: pairflip, rate: 0.3}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "labelemb", "train", "--config", str(config_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    evaluation = json.loads((tmp_path / "runs/noisy/onehot/seed0/evaluation.json").read_text())
    noise = evaluation["noise"]
    assert noise["realised_rate"] == pytest.approx(30, abs=5)
    for weights in ("selected", "final"):
        assert set(noise[weights]) == {
            "memorised",
            "flipped_correct",
            "clean_fit",
            "detect_auroc_loss",
            "detect_auroc_margin",
        }
    from labelemb.experiment.judging import evaluation_line

    assert "wrong training labels fitted" in evaluation_line(evaluation)


@pytest.mark.parametrize(
    ("noise", "message"),
    [
        ("{kind: symmetric, rate: 1.5}", "noise.rate"),
        ("{kind: symmetric, rate: 0.2, dev: noisey}", "noise.dev"),
        ("{kind: file, labels: missing.npy}", "noise.labels file missing.npy not found"),
        ("matrix-file", "row 9 sums to 0.6800"),
        ("other-labels", "as often as unrelated labels would"),
    ],
)
def test_bad_noise_is_one_line_and_writes_nothing(tmp_path, noise, message):
    made = {"matrix-file": write_matrix_file, "other-labels": write_labels_of_other_data}
    noise = made[noise](tmp_path) if noise in made else noise
    config_path = tmp_path / "noisy.yaml"
    config_path.write_text(
        "experiment: noisy\ndata: {name: digits}\nmethod: {name: onehot}\n"
        f"output_dir: {tmp_path / 'runs'}\ntrain: {{epochs: 1, progress: false}}\nnoise: {noise}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "labelemb", "train", "--config", str(config_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_noisy_run_resumed_mid_epoch_counts_memorisation_as_one_run_through(small_config, digits, tmp_path):
    # The prediction table is in the checkpoint: the checks after the crash see the examples
    # predicted before it, as an uninterrupted run's do.
    overrides = ("method.name=onehot", "train.epochs=2", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean", noise=NOISE)
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed", noise=NOISE)
    train(clean, dataset=digits)
    interrupt_at_first_checkpoint(crashed, digits, epoch=0)
    train(crashed, dataset=digits)
    figures = [
        [(record["train_memorised"], record["train_flipped_correct"]) for record in read_metrics(c.run_dir())]
        for c in (clean, crashed)
    ]
    assert figures[0] == figures[1]


def write_matrix_file(folder):
    path = folder / "flips.csv"
    path.write_text(
        "\n".join(["0.82," + ",".join(["0.02"] * 9)] * 9 + ["0.5," + ",".join(["0.02"] * 9)]) + "\n"
    )
    return f"{{kind: matrix, matrix: {path}}}"


def write_labels_of_other_data(folder):
    # A labels file whose labels agree with the digits' own only by chance (a shuffled copy).
    from labelemb.data import load_digits

    digits = load_digits()
    labels = digits.train.labels  # its dev split is not carved from train: the file gives train's rows
    path = folder / "other.txt"
    path.write_text(
        "\n".join(
            str(int(v))
            for v in labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
        )
    )
    return f"{{kind: file, labels: {path}}}"


@pytest.mark.parametrize("method", ["coteaching", "forward_t"])
def test_a_method_told_about_the_noise_is_rebuilt_as_it_trained(small_config, digits, tmp_path, method):
    """Co-teaching takes its forget rate, forward correction its matrix, from what the run knows of
    the noise: a finished run (and its bundle) must rebuild them without the data."""
    import labelemb
    from labelemb.cli import main
    from labelemb.evaluation.run import evaluate_run

    config = small_config(f"method.name={method}", "train.epochs=2", noise=NOISE)
    train(config, dataset=digits)
    run = labelemb.load(config.run_dir())
    kept = load_file(str(config.run_dir() / "label_noise.safetensors"))
    assert run.trained.told_noise["noise_rate"] == pytest.approx(
        float((kept["train_clean"] != kept["train_noisy"]).double().mean())
    )
    assert "noise" in evaluate_run(config.run_dir())
    bundle = tmp_path / "bundle"
    assert main(["export", str(config.run_dir()), "--output", str(bundle)]) == 0
    inputs = digits.test.inputs[:16]
    assert torch.allclose(labelemb.load(bundle).logits(inputs), run.logits(inputs), atol=1e-6)
