"""Counted training FLOPs (issue: comparisons at equal compute): a tiny model's count by hand, the
count in every record, and counting changes nothing of the run."""

from __future__ import annotations

import json

import pytest
import torch

from labelemb.assembly.build import Network, build_network, step_options
from labelemb.tasks import build_task
from labelemb.training import train
from labelemb.training.flops import COUNTED_BATCHES, flops_per_example, flops_per_work

pytestmark = pytest.mark.usefixtures("one_thread")


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_tiny_models_count_is_the_hand_count(small_config, digits):
    # digits: 64 pixels -> MLP 32 (ReLU) -> onehot's 10-way output layer.
    config = small_config("method.name=onehot")
    model, method = build_network(config, digits)
    task = build_task(config, digits)
    network = Network(model, method, rows=task.rows)
    counted = flops_per_example(network, task, digits.train, 0, 100, step_options(config, 0))
    # Forward: 2*64*32 + 2*32*10. Backward: the output layer's weight gradient and its input's
    # gradient (2 * 2*32*10), the hidden layer's weight gradient (2*64*32); the images need none.
    forward = 2 * 64 * 32 + 2 * 32 * 10
    backward = 2 * 2 * 32 * 10 + 2 * 64 * 32
    assert counted == pytest.approx(forward + backward)


def test_the_count_per_example_is_the_count_per_unit_of_work_times_an_examples_work(small_config, digits):
    # Examples of unequal work (tokens) are why the count is per unit of work: here each weighs 2.
    config = small_config("method.name=onehot")
    model, method = build_network(config, digits)

    class TwoUnitsEach(type(build_task(config, digits))):
        def work(self, split, index):
            return 2 * super().work(split, index)

    task = TwoUnitsEach()
    network = Network(model, method, rows=task.rows)
    options = step_options(config, 0)
    hand_count = 2 * 64 * 32 + 2 * 32 * 10 + 2 * 2 * 32 * 10 + 2 * 64 * 32
    per_work = flops_per_work(network, task, digits.train, 0, 100, options, COUNTED_BATCHES)
    assert per_work == pytest.approx(hand_count / 2)
    assert flops_per_example(network, task, digits.train, 0, 100, options) == pytest.approx(hand_count)


def test_a_chunked_head_counts_its_in_place_gradient_products(small_config, digits):
    # The chunked output layer adds each chunk's weight gradient in place (addmm_), which
    # FlopCounterMode alone leaves out: chunked, the count must still be the hand count.
    config = small_config("method.name=onehot", "methods.onehot.chunk_size=7")
    model, method = build_network(config, digits)
    task = build_task(config, digits)
    network = Network(model, method, rows=task.rows)
    counted = flops_per_example(network, task, digits.train, 0, 100, step_options(config, 0))
    assert counted == pytest.approx(2 * 64 * 32 + 2 * 32 * 10 + 2 * 2 * 32 * 10 + 2 * 64 * 32)


def test_every_record_has_the_flops_so_far_and_counting_changes_nothing(small_config, digits, tmp_path):
    config = small_config("method.name=ols")
    summary = train(config, dataset=digits)
    records = read_metrics(config.run_dir())
    per_example = records[0]["train_flops"] / records[0]["examples"]
    assert per_example > 0
    for record in records:
        assert record["train_flops"] == pytest.approx(per_example * record["examples"])
    assert summary["train_flops"] == records[-1]["train_flops"]
    # The same run again gives the same numbers: the count ran on a copy, its random draws undone.
    again = small_config("method.name=ols", output_dir=tmp_path / "again")
    train(again, dataset=digits)
    strip = ("wall_seconds", "train_seconds")
    assert [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(again.run_dir())] == [
        {k: v for k, v in r.items() if k not in strip} for r in records
    ]


def test_label_embedding_counts_more_than_onehot(small_config, digits):
    counts = {}
    for name in ("onehot", "label_embedding"):
        config = small_config(f"method.name={name}")
        model, method = build_network(config, digits)
        task = build_task(config, digits)
        counts[name] = flops_per_example(
            Network(model, method, rows=task.rows), task, digits.train, 0, 100, step_options(config, 0)
        )
    assert counts["label_embedding"] > counts["onehot"]


def test_a_seq2seq_count_grows_with_tokens():
    from labelemb.data.text.sequences import TextPairs
    from labelemb.tasks.seq2seq import SequenceTask

    pairs = TextPairs(
        source=torch.tensor([[5, 6, 7], [5, 0, 0]]),
        target=torch.tensor([[2, 8, 9, 3], [2, 8, 3, 0]]),
        source_lengths=torch.tensor([3, 1]),
        target_lengths=torch.tensor([4, 3]),
        source_tokens=[["a", "b", "c"], ["a"]],
        reference_tokens=[["x", "y"], ["x"]],
    )
    assert SequenceTask.work(None, pairs, torch.tensor([0, 1])) == 11.0  # type: ignore[arg-type]


def test_compare_gives_each_methods_score_at_the_baselines_compute(small_config, digits, tmp_path):
    from labelemb.analysis.compare import comparison_rows, load_runs
    from labelemb.analysis.comparison_table import format_markdown
    from labelemb.experiment import write_comparison

    for method in ("onehot", "label_embedding"):
        for seed in (0, 1):
            config = small_config(
                f"method.name={method}", "train.eval_every=300", "train.epochs=3", seed=seed
            )
            train(config, dataset=digits)
    experiment = tmp_path / "runs" / "small"
    runs = load_runs(experiment)
    rows = {row["method"]: row for row in comparison_rows(runs)}
    # By hand: onehot's budget is its seed-mean FLOPs at its seed-mean best dev check ...
    onehot = [r.records for r in runs["onehot"]]
    dev_mean = [sum(seed[i]["dev_error"] for seed in onehot) / 2 for i in range(len(onehot[0]))]
    best = min(range(len(dev_mean)), key=lambda i: (dev_mean[i], i))
    budget = sum(seed[best]["train_flops"] for seed in onehot) / 2
    # ... and each label_embedding seed reports its test error at its best dev check within it.
    scores = []
    for records in (r.records for r in runs["label_embedding"]):
        within = [rec for rec in records if rec["train_flops"] <= budget * (1 + 1e-9)]
        if within:
            scores.append(min(within, key=lambda rec: (rec["dev_error"], rec["step"]))["test_error"])
    want = sum(scores) / 2 if len(scores) == 2 else None
    assert rows["label_embedding"]["at_baseline_compute"] == (
        pytest.approx(want) if want is not None else None
    )
    assert "test error % at onehot's compute" in format_markdown(list(rows.values()))
    write_comparison(experiment)
    for name in ("curves.png", "curves-seconds.png", "curves-flops.png"):
        assert (experiment / name).stat().st_size > 1000, name
