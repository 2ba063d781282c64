"""PS-KD (progressive self-knowledge distillation) and the per-example state it shares with lwr:
the loss and its gradient by hand, the tables' epoch swap, ignored rows, compact storage, stacked
seeds, kill and resume, torchrun's combined tables and the command line."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers.batched_checks import (
    assert_same_batched_run,
    assert_settings_side_by_side_match_their_own_runs,
    assert_stacked_method_matches_each_seed,
    run_both,
)
from helpers.run_checks import assert_same_resumed_run, interrupt_at_first_checkpoint, launch, read_metrics

from labelemb import methods
from labelemb.cli import main
from labelemb.methods.per_example import per_example_bytes
from labelemb.methods.pskd import ProgressiveSelfKnowledgeDistillation
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

M, D, N_EXAMPLES, EPOCHS, ALPHA = 3, 2, 5, 4, 0.8
W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
B = np.array([0.1, 0.0, -0.1])
DATA = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0], [0.5, -0.5]])  # row i = example i
LABELS = np.array([0, 1, 1, 2, 0])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_head(storage: str = "float32", scale: float = 1.0) -> ProgressiveSelfKnowledgeDistillation:
    head = ProgressiveSelfKnowledgeDistillation(
        D, M, num_examples=N_EXAMPLES, epochs=EPOCHS, alpha=ALPHA, storage=storage
    )
    # float64 for the hand computations; a compact table keeps its storage.
    head.output.double()
    if storage == "float32":
        head.double()
    set_scale(head, scale)
    return head


def set_scale(head, scale: float) -> None:
    """Hand-set weights ``scale * W``: a stand-in for the optimiser moving the head between epochs."""
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(scale * W))
        head.output.bias.copy_(torch.tensor(B))


def step(head, index, targets=None, features=None):
    index = list(index)
    targets = LABELS[index].tolist() if targets is None else targets
    h = torch.tensor(DATA[index]) if features is None else features
    return head(h, torch.tensor(targets), index=torch.tensor(index))


def test_loss_and_gradient_by_hand_over_three_epochs():
    """Epoch t's target: (1 - alpha_t) onehot + alpha_t p^{t-1}, alpha_t = alpha t / T (t from 1);
    the first epoch's is the one-hot label. The gradient in the logits is (p - q) / n: q is detached."""
    head = make_head()
    past = {}  # example -> its prediction recorded in the previous epoch
    for epoch, (scale, order) in enumerate([(1.0, [3, 0, 2, 1, 4]), (0.5, [1, 4, 0]), (2.0, [4, 2, 3, 0])]):
        set_scale(head, scale)
        alpha_t = ALPHA * (epoch + 1) / EPOCHS
        z = scale * DATA[order] @ W.T + B
        p = softmax(z)
        onehot = np.eye(M)[LABELS[order]]
        teacher = np.stack([past.get(i, onehot[k]) for k, i in enumerate(order)])
        q = (1 - alpha_t) * onehot + alpha_t * teacher
        want = float(np.mean(-(q * np.log(p)).sum(-1)))
        features = torch.tensor(DATA[order], requires_grad=True)
        out = step(head, order, features=features)
        assert out.loss.item() == pytest.approx(want, rel=1e-12)
        assert out.terms["ce"].item() == pytest.approx(
            float(np.mean(-np.log(p[range(len(order)), LABELS[order]])))
        )
        out.loss.backward()
        grad_z = (p - q) / len(order)
        np.testing.assert_allclose(head.output.weight.grad.numpy(), grad_z.T @ DATA[order], rtol=1e-10)
        np.testing.assert_allclose(head.output.bias.grad.numpy(), grad_z.sum(0), rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(features.grad.numpy(), grad_z @ (scale * W), rtol=1e-10, atol=1e-15)
        assert not head.soft_targets.requires_grad and not head.pending.requires_grad
        head.zero_grad()
        head.on_epoch_end()
        past.update({i: p[k] for k, i in enumerate(order)})  # unseen examples keep their older row
        for i, row in past.items():
            np.testing.assert_allclose(head.soft_targets[i].numpy(), row, rtol=1e-6)


def test_the_last_epoch_reaches_alpha_and_evaluation_is_plain_cross_entropy():
    head = make_head()
    for _ in range(EPOCHS - 1):
        head.on_epoch_end()
    assert head.weight().item() == pytest.approx(ALPHA)
    head.eval()
    out = head(torch.tensor(DATA), torch.tensor(LABELS))
    z = DATA @ W.T + B
    want = float(np.mean(-np.log(softmax(z)[range(N_EXAMPLES), LABELS])))
    assert out.loss.item() == pytest.approx(want, rel=1e-12)
    head.train()
    with pytest.raises(ValueError, match="needs index="):
        head(torch.tensor(DATA), torch.tensor(LABELS))


def test_ignored_rows_record_nothing_and_get_no_gradient():
    head = make_head()
    step(head, [0, 1, 2, 3, 4])
    head.on_epoch_end()
    before = {k: v.clone() for k, v in head.state_dict().items()}
    features = torch.tensor(DATA[[0, 1, 2]], requires_grad=True)
    out = step(head, [0, 1, 2], targets=[0, -100, 1], features=features)
    out.loss.backward()
    assert not features.grad[1].any()
    # The loss is that of the two rows that count.
    alone = make_head()
    alone.load_state_dict(before)
    assert out.loss.item() == pytest.approx(step(alone, [0, 2]).loss.item(), rel=1e-12)
    head.on_epoch_end()
    assert head.recorded_epoch.tolist() == [1, 0, 1, 0, 0]
    assert torch.equal(head.soft_targets[1], before["soft_targets"][1])  # row 1 kept epoch 0's
    assert head.example_label.tolist() == [0, 1, 1, 2, 0]


def test_compact_storage_halves_the_tables_and_keeps_the_loss():
    exact, compact = make_head("float32"), make_head("float16")
    for head in (exact, compact):
        step(head, [0, 1, 2, 3, 4])
        head.on_epoch_end()
    assert compact.soft_targets.dtype == torch.float16 and compact.pending.dtype == torch.float16
    assert compact.recorded_epoch.dtype == torch.int32
    np.testing.assert_allclose(compact.soft_targets.double(), exact.soft_targets, rtol=1e-3, atol=1e-7)
    got, want = step(compact, [4, 3, 2]).loss.item(), step(exact, [4, 3, 2]).loss.item()
    assert got == pytest.approx(want, rel=1e-4)
    # Per 60,000 examples and 10 classes: 2.88 MB compact, 5.76 MB as lwr stores it.
    assert per_example_bytes(60_000, 10, torch.float16, torch.int32) == 2_880_000
    assert per_example_bytes(60_000, 10, torch.float32, torch.int64) == 5_760_000
    built = methods.build("pskd", in_features=4, num_classes=10, num_examples=60_000, epochs=3)
    held = sum(b.numel() * b.element_size() for name, b in built.named_buffers() if name != "epoch")
    assert held == 2_880_000


def test_options_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        methods.build("pskd", in_features=2, num_classes=3, num_examples=4, epochs=2, alpha=1.5)
    with pytest.raises(ValueError, match="storage"):
        methods.build("pskd", in_features=2, num_classes=3, num_examples=4, epochs=2, storage="int8")
    with pytest.raises(ValueError, match="num_examples"):
        methods.build("pskd", in_features=2, num_classes=3, num_examples=0, epochs=2)
    assert methods.why_not_serving("pskd", "token") is not None


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
@pytest.mark.parametrize("storage", ["float32", "float16"])
def test_stacked_seeds_give_each_seeds_loss_gradients_and_tables(ignored, storage):
    assert_stacked_method_matches_each_seed(
        "pskd", {"num_examples": 60, "epochs": 4, "storage": storage}, ignored
    )


def test_batched_seeds_train_as_sequential_runs(small_config, digits, tmp_path):
    batched, sequential = run_both(small_config, tmp_path, digits, "method.name=pskd")
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)


def test_a_run_killed_mid_epoch_resumes_exactly(small_config, digits, tmp_path):
    overrides = ("method.name=pskd", "train.epochs=3", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    # In epoch 1, whose targets read epoch 0's predictions from the checkpoint's tables.
    at_crash = interrupt_at_first_checkpoint(crashed, digits, epoch=1)
    assert at_crash["epoch"] == 1 and at_crash["batch"] > 0
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())
    records = read_metrics(clean.run_dir())
    assert records[-1]["train_distill"] != records[-1]["train_ce"]  # the teacher was at work


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        head = make_head("float16")
        step(head, [[0, 2, 4], [1, 3]][rank])  # each process is given some of the examples
        head.on_epoch_end()
        torch.save(head.state_dict(), f"{out_dir}/rank{rank}.pt")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    os._exit(0)  # see tests/methods/test_lwr.py: gloo's threads can abort a normal exit


def test_compact_tables_are_combined_over_processes(tmp_path):
    single = make_head("float16")
    step(single, [0, 2, 4])
    step(single, [1, 3])
    single.on_epoch_end()
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(state["soft_targets"], single.soft_targets)
        assert torch.equal(state["example_label"], single.example_label)


def test_labelemb_train_runs_pskd_on_digits(tmp_path, capsys):
    assert (
        main(["train", "--method", "pskd", "--output-dir", str(tmp_path), "--no-progress", "train.epochs=2"])
        == 0
    )
    assert "pskd seed 0: selected test error" in capsys.readouterr().out
    records = read_metrics(tmp_path / "demo-digits-mlp" / "pskd" / "seed0")
    assert [r["epoch"] for r in records] == [1.0, 2.0]
    assert records[-1]["test_error"] < 30.0


def test_soft_cross_entropy_is_torchs():
    """The loss is torch's cross-entropy with probability targets, computed from the stored tables."""
    head = make_head()
    step(head, [0, 1, 2, 3, 4])
    head.on_epoch_end()
    order = [2, 0, 4]
    z = torch.tensor(DATA[order]) @ torch.tensor(W).T + torch.tensor(B)
    alpha_t = ALPHA * 2 / EPOCHS
    q = (1 - alpha_t) * F.one_hot(torch.tensor(LABELS[order]), M).double() + alpha_t * head.soft_targets[
        order
    ]
    assert step(head, order).loss.item() == pytest.approx(F.cross_entropy(z, q).item(), rel=1e-12)


def test_two_torchrun_processes_match_one_process(tmp_path):
    """Each process records the examples of its share; the epoch's end combines the tables."""
    single, double = launch(tmp_path, "pskd", 1), launch(tmp_path, "pskd", 2)
    one, two = read_metrics(single), read_metrics(double)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4 * abs(a["train_loss"]), a["step"]
        assert abs(a["train_distill"] - b["train_distill"]) <= 1e-4 * abs(a["train_distill"]), a["step"]
        assert abs(a["test_error"] - b["test_error"]) <= 100 / 300 + 1e-9


def test_settings_side_by_side_train_as_their_own_runs(small_config, digits, tmp_path):
    """A tuning round's trials, stacked: each setting's numbers."""
    assert_settings_side_by_side_match_their_own_runs(
        small_config, digits, tmp_path, "pskd", [{"alpha": 0.3}, {"alpha": 0.9}, {"alpha": 0.6}]
    )
