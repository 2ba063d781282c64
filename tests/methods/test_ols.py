"""Online label smoothing: the loss by hand and the epoch state machine step by step (DESIGN.md)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from labelemb.methods.base import LabelRangeError
from labelemb.methods.ols import OnlineLabelSmoothing

M, D = 3, 2
W = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]
B = [0.1, 0.0, -0.1]
# Logits: [2.1, 0, -2.1], [0.1, 3, 1.4], [1.1, 1, -0.6], [-0.9, -2, -0.1]: predictions 0, 1, 0, 2.
FEATURES = [[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0]]
S_HAND = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def make_head(**options) -> OnlineLabelSmoothing:
    head = OnlineLabelSmoothing(D, M, **options)
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(W))
        head.output.bias.copy_(torch.tensor(B))
    return head


def hand_probs(features) -> list[np.ndarray]:
    return [softmax(np.array(W) @ np.array(h) + np.array(B)) for h in features]


def hand_loss(features, targets, soft_labels, alpha=0.5) -> float:
    """(1 - alpha) H(y, p) + alpha H(S[y], p), averaged over the rows that count."""
    total, n = 0.0, 0
    for p, y in zip(hand_probs(features), targets):
        if y == -100:
            continue
        total += (1 - alpha) * -np.log(p[y]) + alpha * -(np.array(soft_labels[y]) * np.log(p)).sum()
        n += 1
    return total / n


def run(head, targets, features=FEATURES):
    return head(torch.tensor(features), torch.tensor(targets))


def test_first_epoch_soft_labels_are_zero_so_the_loss_is_half_the_cross_entropy():
    head = make_head()
    targets = [0, 1, 1, 2]
    out = run(head, targets)
    assert torch.equal(head.soft_labels, torch.zeros(M, M))
    assert out.terms["soft"].item() == 0.0
    ce = np.mean([-np.log(p[y]) for p, y in zip(hand_probs(FEATURES), targets)])
    assert out.loss.item() == pytest.approx(0.5 * ce, rel=1e-6)
    assert out.terms["ce"].item() == pytest.approx(ce, rel=1e-6)


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_loss_with_soft_labels_matches_hand_computation(alpha):
    head = make_head(alpha=alpha)
    head.soft_labels.copy_(torch.tensor(S_HAND))
    targets = [0, 1, 2, 1]
    out = run(head, targets)
    assert out.loss.item() == pytest.approx(hand_loss(FEATURES, targets, S_HAND, alpha), rel=1e-6)


def test_gradient_is_the_soft_target_gradient_and_s_gets_none():
    head = make_head()
    head.soft_labels.copy_(torch.tensor(S_HAND))
    targets = [0, 1, 2, 1]
    features = torch.tensor(FEATURES, requires_grad=True)
    head(features, torch.tensor(targets)).loss.backward()
    # dL/dz_i = (p_i - (0.5 e_y + 0.5 S[y])) / N, since each S row sums to 1; dL/dh = W^T dL/dz.
    expected = np.stack(
        [
            np.array(W).T @ ((p - 0.5 * np.eye(M)[y] - 0.5 * np.array(S_HAND[y])) / 4)
            for p, y in zip(hand_probs(FEATURES), targets)
        ]
    )
    np.testing.assert_allclose(features.grad.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert not head.soft_labels.requires_grad and "soft_labels" not in dict(head.named_parameters())


def test_only_correctly_predicted_examples_accumulate():
    head = make_head()
    targets = [0, 1, 1, 0]  # correct: row 0 (class 0) and row 1 (class 1); rows 2, 3 are wrong
    run(head, targets)
    probs = hand_probs(FEATURES)
    expected_acc = np.zeros((M, M))
    expected_acc[0] = probs[0]
    expected_acc[1] = probs[1]
    np.testing.assert_allclose(head.acc.numpy(), expected_acc, rtol=1e-6)
    assert head.cnt.tolist() == [1, 1, 0]
    # A second batch adds to the same accumulators.
    run(head, [0, 1, 0, 2])  # correct: rows 0, 1, 2 (0 is predicted for [1, 1]) and 3
    expected_acc[0] += probs[0] + probs[2]
    expected_acc[1] += probs[1]
    expected_acc[2] += probs[3]
    np.testing.assert_allclose(head.acc.numpy(), expected_acc, rtol=1e-6)
    assert head.cnt.tolist() == [3, 2, 1]


def test_epoch_end_averages_gives_uniform_rows_to_missing_classes_and_resets():
    head = make_head()
    run(head, [0, 1, 1, 0])  # class 2 has no correct example
    run(head, [0, 0, 0, 0])  # correct: rows 0 and 2
    probs = hand_probs(FEATURES)
    head.on_epoch_end()
    expected = np.array([(probs[0] + probs[0] + probs[2]) / 3, probs[1], np.full(M, 1 / M)])
    np.testing.assert_allclose(head.soft_labels.numpy(), expected, rtol=1e-6)
    assert torch.equal(head.acc, torch.zeros(M, M))
    assert torch.equal(head.cnt, torch.zeros(M, dtype=torch.long))
    torch.testing.assert_close(head.label_representation(), head.soft_labels)
    # The next epoch trains against the new S.
    targets = [0, 1, 2, 1]
    assert run(head, targets).loss.item() == pytest.approx(hand_loss(FEATURES, targets, expected), rel=1e-5)
    # An epoch with no correct example at all makes every row uniform.
    head.on_epoch_end()
    head.on_epoch_end()
    np.testing.assert_allclose(head.soft_labels.numpy(), np.full((M, M), 1 / M), rtol=1e-6)


def test_evaluation_changes_nothing():
    head = make_head()
    run(head, [0, 1, 1, 0])
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.eval()
    out = run(head, [0, 1, 1, 2])
    assert out.loss.item() > 0
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_ignored_rows_contribute_nothing_and_never_touch_the_state():
    head = make_head()
    head.soft_labels.copy_(torch.tensor(S_HAND))
    base = run(head, [0, 1, 2, 1])
    base_acc, base_cnt = head.acc.clone(), head.cnt.clone()
    other = make_head()
    other.soft_labels.copy_(torch.tensor(S_HAND))
    # The padded rows' argmax is 0, the class an ignored row's label is filled with.
    padded = run(other, [0, 1, 2, 1, -100, -100], [*FEATURES, [5.0, 0.0], [3.0, -1.0]])
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    assert torch.equal(other.acc, base_acc) and torch.equal(other.cnt, base_cnt)
    # A batch of ignored rows only: loss 0, nothing accumulated.
    fresh = make_head()
    out = run(fresh, [-100, -100], [[5.0, 0.0], [3.0, -1.0]])
    assert out.loss.item() == 0.0 and fresh.cnt.sum().item() == 0


def test_state_dict_round_trip_resumes_exactly():
    head = make_head()
    run(head, [0, 1, 1, 0])
    head.on_epoch_end()
    run(head, [0, 0, 2, 2])  # mid-epoch: acc and cnt are non-zero
    state = head.state_dict()
    assert {"soft_labels", "acc", "cnt"} <= set(state)
    resumed = OnlineLabelSmoothing(D, M)
    resumed.load_state_dict(state)
    for name in ("soft_labels", "acc", "cnt"):
        assert torch.equal(getattr(resumed, name), getattr(head, name)), name
    for module in (head, resumed):
        run(module, [1, 1, 1, 2])
        module.on_epoch_end()
    assert torch.equal(resumed.soft_labels, head.soft_labels)


def test_label_outside_the_class_range_is_a_clear_error():
    head = make_head()
    with pytest.raises(LabelRangeError, match=r"\[3\].*outside \[0, 3\)"):
        run(head, [0, 1, 3, 1])
    assert head.cnt.sum().item() == 0
    with pytest.raises(ValueError, match="alpha"):
        OnlineLabelSmoothing(D, M, alpha=1.5)


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        head = make_head()
        rows = slice(rank * 2, rank * 2 + 2)  # each process sees half of every batch
        for targets in ([0, 1, 1, 0], [0, 0, 2, 2]):
            head(torch.tensor(FEATURES)[rows], torch.tensor(targets)[rows])
        head.on_epoch_end()
        torch.save(head.soft_labels, f"{out_dir}/rank{rank}.pt")
        # Both processes leave their collectives before either tears gloo down (else one may abort).
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    # Skip interpreter teardown: gloo's threads can abort a process that exits normally after
    # destroy_process_group, which mp.spawn would report as a failure of a test that passed.
    os._exit(0)


def test_epoch_statistics_are_summed_over_processes(tmp_path):
    single = make_head()
    for targets in ([0, 1, 1, 0], [0, 0, 2, 2]):
        run(single, targets)
    single.on_epoch_end()
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        torch.testing.assert_close(torch.load(tmp_path / f"rank{rank}.pt"), single.soft_labels)
