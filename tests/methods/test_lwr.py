"""Learning with retrospection: the loss by hand and the per-example state machine step by step."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from labelemb.methods.base import LabelRangeError
from labelemb.methods.lwr import LearningWithRetrospection

M, D, N_EXAMPLES = 3, 2, 5
W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
B = np.array([0.1, 0.0, -0.1])
DATA = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0], [0.5, -0.5]])  # row i = example i
LABELS = np.array([0, 1, 1, 2, 0])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def make_head(k=2, epochs=10, tau=5.0, gamma=0.1, scale=1.0) -> LearningWithRetrospection:
    head = LearningWithRetrospection(D, M, num_examples=N_EXAMPLES, epochs=epochs, k=k, tau=tau, gamma=gamma)
    set_scale(head, scale)
    return head


def set_scale(head, scale: float) -> None:
    """Hand-set weights ``scale * W``: a stand-in for the optimiser changing the head between epochs."""
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(scale * W, dtype=torch.float32))
        head.output.bias.copy_(torch.tensor(B, dtype=torch.float32))


def logits_of(i: int, scale: float) -> np.ndarray:
    return scale * W @ DATA[i] + B


def step(head, index, targets=None):
    index = list(index)
    targets = LABELS[index].tolist() if targets is None else targets
    return head(
        torch.tensor(DATA[index], dtype=torch.float32), torch.tensor(targets), index=torch.tensor(index)
    )


def hand_ce(index, scale: float) -> float:
    return float(np.mean([-np.log(softmax(logits_of(i, scale))[LABELS[i]]) for i in index]))


def hand_loss(index, scale: float, stored: np.ndarray, w: float, tau: float = 5.0) -> float:
    """(1 - w) CE + w tau^2 KL(stored_i || softmax(z_i / tau)), example by example."""
    kl = []
    for i in index:
        q = softmax(logits_of(i, scale) / tau)
        s = stored[i]
        kl.append(sum(s_c * (np.log(s_c) - np.log(q_c)) for s_c, q_c in zip(s, q) if s_c > 0))
    return (1 - w) * hand_ce(index, scale) + w * tau**2 * float(np.mean(kl))


def test_first_k_epochs_are_plain_cross_entropy():
    head = make_head(k=2)
    assert LearningWithRetrospection.needs_index is True
    for epoch, order in enumerate(([3, 0, 2, 1, 4], [1, 4, 0, 3, 2])):
        assert int(head.epoch) == epoch
        out = step(head, order)
        assert out.loss.item() == pytest.approx(hand_ce(order, 1.0), rel=1e-6)
        assert out.terms["kl"].item() == 0.0
        assert torch.equal(head.soft_targets, torch.zeros(N_EXAMPLES, M))  # no swap before epoch k
        head.on_epoch_end()


def test_soft_targets_are_the_kth_epoch_recordings_stored_by_index():
    tau = 5.0
    head = make_head(k=2, tau=tau)
    step(head, [3, 0, 2, 1])  # epoch 0 (example 4 not seen)
    head.on_epoch_end()
    assert torch.equal(head.soft_targets, torch.zeros(N_EXAMPLES, M))
    set_scale(head, 2.0)  # the head has changed by epoch 1
    step(head, [1, 3])  # epoch 1, two batches in shuffled order
    step(head, [0, 2])
    head.on_epoch_end()  # end of epoch k - 1 = 1: swap
    expected = np.zeros((N_EXAMPLES, M))
    for i in range(4):
        expected[i] = softmax(logits_of(i, 2.0) / tau)  # epoch 1's recordings, not epoch 0's
    np.testing.assert_allclose(head.soft_targets.numpy(), expected, rtol=1e-6)
    assert head.example_label.tolist() == [0, 1, 1, 2, -1]


def test_weight_follows_the_formula():
    head = make_head(k=2, epochs=10, gamma=0.1)
    weights = []
    for _ in range(7):
        weights.append(head.retrospection_weight().item())
        head.on_epoch_end()
    # w = (1 - gamma) * k * floor(epoch / k) / epochs
    expected = [0.9 * 2 * (e // 2) / 10 for e in range(7)]
    assert weights == pytest.approx(expected, rel=1e-6)
    assert weights[:2] == [0.0, 0.0] and weights[2] == pytest.approx(0.18)
    head5 = LearningWithRetrospection(D, M, num_examples=4, epochs=100)
    assert (head5.k, head5.tau, head5.gamma) == (5, 5.0, 0.1)


def test_loss_after_k_epochs_matches_hand_computation():
    tau = 5.0
    head = make_head(k=2, epochs=10, tau=tau)
    for _ in range(2):
        step(head, [0, 1, 2, 3])
        head.on_epoch_end()
    stored = head.soft_targets.numpy().copy()
    set_scale(head, 0.5)
    order = [2, 4, 0, 1]  # example 4 was never recorded: its KL term is 0
    out = step(head, order)
    w = 0.9 * 2 / 10
    assert out.loss.item() == pytest.approx(hand_loss(order, 0.5, stored, w, tau), rel=1e-5)
    assert out.terms["ce"].item() == pytest.approx(hand_ce(order, 0.5), rel=1e-6)
    # Epoch 2 records but does not swap (only every k-th epoch does); epoch 3 swaps.
    head.on_epoch_end()
    np.testing.assert_array_equal(head.soft_targets.numpy(), stored)
    step(head, [0, 1])  # epoch 3 sees only examples 0 and 1
    head.on_epoch_end()
    fresh = head.soft_targets.numpy()
    for i in (0, 1):
        np.testing.assert_allclose(fresh[i], softmax(logits_of(i, 0.5) / tau), rtol=1e-6)
    # Examples not seen in the swap epoch keep their previous soft label (2, 3), or none (4).
    np.testing.assert_array_equal(fresh[2:4], stored[2:4])
    np.testing.assert_array_equal(fresh[4], np.zeros(M))


def test_gradient_of_the_soft_term():
    tau = 2.0
    head = make_head(k=1, epochs=4, tau=tau)
    step(head, [0, 1, 2, 3])
    head.on_epoch_end()
    stored = head.soft_targets.numpy()
    set_scale(head, 1.5)
    features = torch.tensor(DATA[[0, 1, 2, 3]], dtype=torch.float32, requires_grad=True)
    head(features, torch.tensor(LABELS[:4]), index=torch.arange(4)).loss.backward()
    w = 0.9 * 1 / 4
    # dL/dz = [(1 - w) (p - e_y) + w tau (q - s)] / N for L = (1-w) CE + w tau^2 KL(s || softmax(z/tau)).
    expected = np.stack(
        [
            (1.5 * W).T
            @ (
                (1 - w) * (softmax(logits_of(i, 1.5)) - np.eye(M)[LABELS[i]])
                + w * tau * (softmax(logits_of(i, 1.5) / tau) - stored[i])
            )
            / 4
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(features.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_index_is_required_in_training_and_checked():
    head = make_head()
    with pytest.raises(ValueError, match=r"needs index= in training.*position in the training set"):
        head(torch.tensor(DATA, dtype=torch.float32), torch.tensor(LABELS))
    with pytest.raises(IndexError, match=r"\[0, num_examples=5\)"):
        head(torch.tensor(DATA[:2], dtype=torch.float32), torch.tensor([0, 1]), index=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="index must have shape"):
        head(torch.tensor(DATA[:2], dtype=torch.float32), torch.tensor([0, 1]), index=torch.tensor([0]))
    with pytest.raises(TypeError, match="integer"):
        head(
            torch.tensor(DATA[:2], dtype=torch.float32), torch.tensor([0, 1]), index=torch.tensor([0.0, 1.0])
        )
    with pytest.raises(LabelRangeError):
        step(head, [0, 1], targets=[0, 3])
    assert int(head.recorded_epoch.max()) == -1  # none of the failed calls recorded anything
    # In evaluation an index is optional: without one the loss is the plain cross-entropy.
    head.eval()
    out = head(torch.tensor(DATA, dtype=torch.float32), torch.tensor(LABELS))
    assert out.loss.item() == pytest.approx(hand_ce(range(5), 1.0), rel=1e-6)


def test_evaluation_changes_nothing():
    head = make_head(k=1)
    step(head, [0, 1, 2])
    head.on_epoch_end()
    step(head, [3, 4])
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.eval()
    set_scale(head, 3.0)
    step(head, [0, 1, 2, 3, 4])
    head.train()
    set_scale(head, 1.0)
    for key, value in head.state_dict().items():
        if not key.startswith("output."):
            assert torch.equal(value, before[key]), key


def test_ignored_rows_contribute_nothing_and_never_touch_the_state():
    head = make_head(k=1)
    step(head, [0, 1, 2, 3, 4])
    head.on_epoch_end()
    other = make_head(k=1)
    other.load_state_dict(head.state_dict())
    base = step(head, [0, 1, 2])
    padded = step(other, [0, 1, 2, 3, 4], targets=[0, 1, 1, -100, -100])
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    for key, value in head.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key  # rows 3, 4 kept epoch 0's recording
    assert other.recorded_epoch.tolist() == [1, 1, 1, 0, 0]


def test_state_dict_round_trip_resumes_exactly():
    head = make_head(k=2)
    for order in ([0, 1, 2], [3, 4, 0]):
        step(head, order)
        head.on_epoch_end()
    step(head, [1, 2])  # mid-epoch 2
    state = head.state_dict()
    assert {"epoch", "soft_targets", "pending", "recorded_epoch", "example_label"} <= set(state)
    resumed = LearningWithRetrospection(D, M, num_examples=N_EXAMPLES, epochs=10, k=2)
    resumed.load_state_dict(state)
    losses = []
    for module in (head, resumed):
        step(module, [0, 3, 4])
        module.on_epoch_end()  # end of epoch 3: swap
        losses.append(step(module, [0, 1, 2, 3, 4]).loss.item())
        module.on_epoch_end()
    assert losses[0] == losses[1]
    for key, value in head.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_label_representation_is_the_per_class_mean_of_stored_soft_labels():
    tau = 5.0
    head = make_head(k=1, tau=tau)
    torch.testing.assert_close(head.label_representation(), torch.eye(M))  # before any soft label
    step(head, [0, 1, 2, 3])  # example 4 (class 0) is never seen
    head.on_epoch_end()
    q = [softmax(logits_of(i, 1.0) / tau) for i in range(4)]
    expected = np.stack([q[0], (q[1] + q[2]) / 2, q[3]])
    np.testing.assert_allclose(head.label_representation().numpy(), expected, rtol=1e-6)


def test_options_are_checked():
    for bad in ({"k": 0}, {"tau": 0.0}, {"gamma": 1.5}, {"epochs": 0}, {"num_examples": 0}):
        options = {"num_examples": 4, "epochs": 10, **bad}
        with pytest.raises(ValueError):
            LearningWithRetrospection(D, M, **options)
    for bad in (0, -240, 2.5, float("inf"), True, "240"):
        with pytest.raises(ValueError, match="weight_horizon .* must be a positive integer"):
            LearningWithRetrospection(D, M, num_examples=4, epochs=200, weight_horizon=bad)
    # 200 epochs, k = 5: the last epoch has c = 195, so w = 0.9 * 195 / H must stay <= 1.
    with pytest.raises(ValueError, match="exceed 1 by the last epoch .* at least 175.5"):
        LearningWithRetrospection(D, M, num_examples=4, epochs=200, weight_horizon=175)
    assert (
        LearningWithRetrospection(D, M, num_examples=4, epochs=200, weight_horizon=176).weight_horizon == 176
    )


def test_weight_horizon_divides_by_the_authors_240_instead_of_the_epochs():
    """Their code, 200 epochs: w = (1 - gamma) c / 240, so 0.9 * 195 / 240 in our last epoch (not / 200)."""
    head = LearningWithRetrospection(D, M, num_examples=4, epochs=200, weight_horizon=240)
    default = LearningWithRetrospection(D, M, num_examples=4, epochs=200)
    by_epoch = {}
    for epoch in range(200):
        by_epoch[epoch] = (head.retrospection_weight().item(), default.retrospection_weight().item())
        head.on_epoch_end()
        default.on_epoch_end()
    assert by_epoch[4] == (0.0, 0.0)
    assert by_epoch[5] == pytest.approx((0.9 * 5 / 240, 0.9 * 5 / 200), rel=1e-6)
    assert by_epoch[137] == pytest.approx((0.9 * 135 / 240, 0.9 * 135 / 200), rel=1e-6)
    assert by_epoch[199] == pytest.approx((0.73125, 0.8775), rel=1e-6)
    # And the loss uses it: after k = 2 epochs, w = 0.9 * 2 / 24 here, with 10 epochs trained.
    tau = 5.0
    head = LearningWithRetrospection(
        D, M, num_examples=N_EXAMPLES, epochs=10, k=2, tau=tau, weight_horizon=24
    )
    set_scale(head, 1.0)
    for _ in range(2):
        step(head, [0, 1, 2, 3])
        head.on_epoch_end()
    stored = head.soft_targets.numpy().copy()
    set_scale(head, 0.5)
    order = [2, 4, 0, 1]
    out = step(head, order)
    assert out.loss.item() == pytest.approx(hand_loss(order, 0.5, stored, 0.9 * 2 / 24, tau), rel=1e-5)


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        head = make_head(k=1)
        step(head, [[0, 2, 4], [1, 3]][rank])  # each process is given some of the examples
        head.on_epoch_end()
        torch.save(head.state_dict(), f"{out_dir}/rank{rank}.pt")
        # Both processes leave their collectives before either tears gloo down (else one may abort).
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    # Skip interpreter teardown: gloo's threads can abort a process that exits normally after
    # destroy_process_group, which mp.spawn would report as a failure of a test that passed.
    os._exit(0)


def test_soft_labels_are_combined_over_processes(tmp_path):
    single = make_head(k=1)
    step(single, [0, 2, 4])
    step(single, [1, 3])
    single.on_epoch_end()
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(state["soft_targets"], single.soft_targets)
        assert torch.equal(state["example_label"], single.example_label)
