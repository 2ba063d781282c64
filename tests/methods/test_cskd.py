"""CS-KD (class-wise self-knowledge distillation) and the door it needs, a method that shapes its
batches: the loss and its gradient by hand, ignored and mismatched pairs, the class-pair order
(pairs, a function of seed and epoch), the loop's batches, stacked seeds, resume, torchrun's
shares, the adapters' refusal and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.batched_checks import (
    assert_same_batched_run,
    assert_settings_side_by_side_match_their_own_runs,
    assert_stacked_method_matches_each_seed,
    run_both,
)
from helpers.run_checks import assert_same_resumed_run, interrupt_at_first_checkpoint, launch, read_metrics

from labelemb import methods
from labelemb.cli import main
from labelemb.data.text.classes import TextClassSplit
from labelemb.methods.batch_shapes import ClassPairs, refuse_batch_shape
from labelemb.methods.cskd import ClassWiseSelfKnowledgeDistillation
from labelemb.tasks.classification import Classification
from labelemb.tasks.text_classification import TextClassification
from labelemb.training import train
from labelemb.training.distributed import Processes
from labelemb.training.epoch_order import epoch_order, rows_per_example
from labelemb.training.flops import COUNTED_BATCHES

pytestmark = pytest.mark.usefixtures("one_thread")

M, D, T, LAM = 3, 2, 4.0, 1.5
W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
B = np.array([0.1, 0.0, -0.1])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_head(**options) -> ClassWiseSelfKnowledgeDistillation:
    head = ClassWiseSelfKnowledgeDistillation(D, M, temperature=T, lam=LAM, **options).double()
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(W))
        head.output.bias.copy_(torch.tensor(B))
    return head


def hand(h: np.ndarray, y: np.ndarray, pairs_that_count, anchors_that_count) -> tuple[float, np.ndarray]:
    """Loss and its gradient in the logits: CE of the drawn rows (0, 2, ...) + lambda T^2 KL(sg(P(x'; T))
    || P(x; T)) over the pairs that count, both over the drawn rows that count."""
    z = h @ W.T + B
    n = len(anchors_that_count)
    grad = np.zeros_like(z)
    loss = 0.0
    for k in anchors_that_count:
        i = 2 * k
        p = softmax(z[i])
        loss += -np.log(p[y[i]]) / n
        grad[i] += (p - np.eye(M)[y[i]]) / n
    for k in pairs_that_count:
        i, j = 2 * k, 2 * k + 1
        teacher, q = softmax(z[j] / T), softmax(z[i] / T)
        loss += LAM * T**2 * float((teacher * (np.log(teacher) - np.log(q))).sum()) / n
        grad[i] += LAM * T * (q - teacher) / n  # d/dz of T^2 KL(t || softmax(z / T)) = T (q - t)
    return loss, grad


H = np.array([[2.0, 0.0], [1.0, 0.5], [0.0, 3.0], [0.5, 2.0], [-1.0, -2.0], [-0.5, -1.0]])
Y = np.array([0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    ("labels", "pairs", "anchors"),
    [
        (Y, [0, 1, 2], [0, 1, 2]),
        # An ignored partner: its pair adds no KL; an ignored drawn row: neither CE nor KL.
        (np.array([0, -100, 1, 1, -100, 2]), [1], [0, 1]),
        # A pair of two classes (not the loop's batches) adds no KL.
        (np.array([0, 1, 1, 1, 2, 2]), [1, 2], [0, 1, 2]),
    ],
    ids=["pairs", "ignored-rows", "mismatched-pair"],
)
def test_loss_and_gradient_by_hand(labels, pairs, anchors):
    head = make_head()
    features = torch.tensor(H, requires_grad=True)
    out = head(features, torch.tensor(labels))
    want, grad_z = hand(H, np.where(labels < 0, 0, labels), pairs, anchors)
    assert out.loss.item() == pytest.approx(want, rel=1e-12)
    out.loss.backward()
    np.testing.assert_allclose(head.output.weight.grad.numpy(), grad_z.T @ H, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(head.output.bias.grad.numpy(), grad_z.sum(0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(features.grad.numpy(), grad_z @ W, rtol=1e-10, atol=1e-14)
    # The partners are teachers only: detached, they get no gradient.
    assert not features.grad[1::2].any()


def test_an_odd_batch_is_refused_in_one_line():
    with pytest.raises(ValueError, match="pairs of examples of the same class"):
        make_head()(torch.tensor(H[:5]), torch.tensor(Y[:5]))


def test_options_and_traits():
    with pytest.raises(ValueError, match="temperature"):
        methods.build("cskd", in_features=2, num_classes=3, temperature=0.0)
    with pytest.raises(ValueError, match="lam"):
        methods.build("cskd", in_features=2, num_classes=3, lam=-1.0)
    assert methods.why_not_serving("cskd", "token") is not None
    assert isinstance(ClassWiseSelfKnowledgeDistillation.batch_shape, ClassPairs)
    assert rows_per_example(methods.build("cskd", in_features=2, num_classes=3)) == 2
    assert rows_per_example(methods.build("onehot", in_features=2, num_classes=3)) == 1


# ---------------------------------------------------------------- the class-pair order


def test_the_order_draws_every_example_once_each_followed_by_another_of_its_class():
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 1, 3, 0, 2])  # class 3 has one example
    order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    rows = ClassPairs().arrange(order, labels, seed=0, epoch=0)
    assert rows.shape == (20,)
    assert torch.equal(rows[0::2], order)
    drawn, partner = rows[0::2], rows[1::2]
    assert torch.equal(labels[drawn], labels[partner])
    alone = drawn == 7
    assert torch.equal(partner[alone], drawn[alone])  # the only one of its class pairs with itself
    assert not (partner[~alone] == drawn[~alone]).any()


def test_partners_are_drawn_uniformly_from_the_others_of_the_class():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    counts = torch.zeros(6, 6)
    for epoch in range(600):
        rows = ClassPairs().arrange(torch.arange(6), labels, seed=3, epoch=epoch)
        counts[rows[0::2], rows[1::2]] += 1
    # Example 0's partners: 1, 2, 3 about 200 times each; example 4's always 5.
    assert counts[0, 0] == 0 and counts[0, 4:].sum() == 0
    assert ((counts[0, 1:4] - 200).abs() < 50).all()
    assert counts[4, 5] == 600


def test_the_order_is_a_function_of_seed_and_epoch(digits):
    task, method = Classification(), methods.build("cskd", in_features=64, num_classes=10)
    split = digits.train
    first = epoch_order(task, method, split, seed=0, epoch=0, batch_size=100)
    assert torch.equal(first, epoch_order(task, method, split, seed=0, epoch=0, batch_size=100))
    assert not torch.equal(first, epoch_order(task, method, split, seed=0, epoch=1, batch_size=100))
    assert not torch.equal(first, epoch_order(task, method, split, seed=1, epoch=0, batch_size=100))
    assert first.shape == (2 * len(split),)
    assert torch.equal(first[0::2], task.epoch_order(split, 0, 0, 100))  # the task's order, drawn once each
    assert torch.equal(split.labels[first[0::2]], split.labels[first[1::2]])


def test_texts_keep_their_tasks_order_and_data_without_class_labels_is_refused():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 9, (40,), generator=g)
    split = TextClassSplit(torch.randint(1, 50, (40, 8), generator=g), torch.arange(40) % 4, lengths)
    task, method = TextClassification(), methods.build("cskd", in_features=8, num_classes=4)
    rows = epoch_order(task, method, split, seed=2, epoch=5, batch_size=8)
    assert torch.equal(rows[0::2], task.epoch_order(split, 2, 5, 8))  # length-grouped, as for any method
    assert torch.equal(split.labels[rows[0::2]], split.labels[rows[1::2]])

    class Pairs:  # a split of sentence pairs: no class labels
        def __len__(self) -> int:
            return 4

    class Sequences:
        data_kind = "a corpus of sentence pairs"

        def epoch_order(self, split, seed, epoch, batch_size):
            return torch.arange(4)

    with pytest.raises(ValueError, match="one class label per training example; a corpus of sentence pairs"):
        epoch_order(Sequences(), method, Pairs(), seed=0, epoch=0, batch_size=2)


def test_processes_share_a_batch_out_by_whole_pairs():
    batch = torch.arange(12)
    shares = [Processes(rank=r, world_size=3).shard(batch, 2) for r in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]
    assert Processes(rank=1, world_size=2).shard(batch).tolist() == [1, 3, 5, 7, 9, 11]


# ---------------------------------------------------------------- through the loop


def test_every_training_batch_is_pairs_of_one_class(small_config, digits, monkeypatch):
    seen = []
    loss = ClassWiseSelfKnowledgeDistillation.compute_loss

    def spy(self, logits, rows, features, index):
        seen.append(rows.label.clone())
        return loss(self, logits, rows, features, index)

    monkeypatch.setattr(ClassWiseSelfKnowledgeDistillation, "compute_loss", spy)
    config = small_config("method.name=cskd", "train.epochs=1", "train.batch_size=64")
    train(config, dataset=digits)
    # The FLOP count's batches (COUNTED_BATCHES), then one epoch: 1,197 examples drawn in 19 batches of 64.
    assert len(seen) == COUNTED_BATCHES + 19
    assert all(len(labels) == 128 for labels in seen[:COUNTED_BATCHES])
    steps = seen[COUNTED_BATCHES:]
    assert sum(len(labels) for labels in steps) == 2 * len(digits.train)
    assert all(len(labels) == 128 for labels in steps[:-1]) and len(steps[-1]) == 2 * (1197 - 18 * 64)
    assert all(torch.equal(labels[0::2], labels[1::2]) for labels in seen)
    records = read_metrics(config.run_dir())
    assert records[-1]["examples"] == len(digits.train) and records[-1]["epoch"] == 1.0
    assert records[-1]["train_kl"] > 0


def test_batched_seeds_train_as_sequential_runs(small_config, digits, tmp_path):
    batched, sequential = run_both(small_config, tmp_path, digits, "method.name=cskd")
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
def test_stacked_seeds_give_each_seeds_loss_gradients(ignored):
    assert_stacked_method_matches_each_seed("cskd", {"temperature": 3.0, "lam": 2.0}, ignored)


def test_a_run_killed_mid_epoch_resumes_exactly(small_config, digits, tmp_path):
    overrides = ("method.name=cskd", "train.epochs=3", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    at_crash = interrupt_at_first_checkpoint(crashed, digits, epoch=1)
    assert at_crash["epoch"] == 1 and at_crash["batch"] > 0
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())


def test_labelemb_train_runs_cskd_on_digits(tmp_path, capsys):
    argv = ["train", "--method", "cskd", "--output-dir", str(tmp_path), "--no-progress", "train.epochs=2"]
    assert main(argv) == 0
    assert "cskd seed 0: selected test error" in capsys.readouterr().out
    records = read_metrics(tmp_path / "demo-digits-mlp" / "cskd" / "seed0")
    assert [r["epoch"] for r in records] == [1.0, 2.0]
    assert records[-1]["test_error"] < 30.0


# ---------------------------------------------------------------- the adapters


def test_the_adapters_refuse_cskd_in_one_line(tmp_path):
    cskd = methods.build("cskd", in_features=3, num_classes=4)
    with pytest.raises(ValueError, match="needs batches of pairs") as caught:
        refuse_batch_shape(cskd, "a Hugging Face Trainer")
    assert "\n" not in str(caught.value)
    refuse_batch_shape(methods.build("onehot", in_features=3, num_classes=4), "a Hugging Face Trainer")


def test_a_hugging_face_trainer_refuses_cskd_at_the_start(tmp_path):
    from helpers.huggingface_models import build_tiny_bert, trainer_for

    from labelemb.integrations.huggingface import EpochEndCallback, LabelembLoss

    model = build_tiny_bert("cskd", {}, tokens=False)
    with pytest.raises(ValueError, match="needs batches of pairs of examples of the same class") as caught:
        LabelembLoss(model.head)
    assert "\n" not in str(caught.value) and "Hugging Face Trainer" in str(caught.value)
    # A Trainer given only the callback refuses it when training starts, before any step.
    trainer = trainer_for(
        build_tiny_bert("onehot", {}, tokens=False), tmp_path, per_device_train_batch_size=8, max_steps=1
    )
    trainer.callback_handler.add_callback(EpochEndCallback(model.head))
    with pytest.raises(ValueError, match="needs batches of pairs"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_lightning_trainer_refuses_cskd_at_the_start():
    from helpers.lightning_models import Heads, fit

    from labelemb.integrations.lightning import LabelembCallback

    model = Heads({"onehot": {}, "cskd": {}})
    with pytest.raises(ValueError, match="needs batches of pairs") as caught:
        fit(model, callbacks=[LabelembCallback()])
    assert "\n" not in str(caught.value) and "Lightning Trainer" in str(caught.value)


def test_two_torchrun_processes_match_one_process(tmp_path):
    """Each process takes whole pairs of every batch (Processes.shard by groups of two)."""
    single, double = launch(tmp_path, "cskd", 1), launch(tmp_path, "cskd", 2)
    one, two = read_metrics(single), read_metrics(double)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4 * abs(a["train_loss"]), a["step"]
        assert abs(a["train_kl"] - b["train_kl"]) <= 1e-4 * abs(a["train_kl"]) + 1e-7, a["step"]
        assert abs(a["test_error"] - b["test_error"]) <= 100 / 300 + 1e-9


def test_settings_side_by_side_train_as_their_own_runs(small_config, digits, tmp_path):
    """A tuning round's trials, stacked: each setting's numbers."""
    assert_settings_side_by_side_match_their_own_runs(
        small_config,
        digits,
        tmp_path,
        "cskd",
        [
            {"temperature": 2.0, "lam": 0.5},
            {"temperature": 6.0, "lam": 3.0},
            {"temperature": 4.0, "lam": 1.0},
        ],
    )
