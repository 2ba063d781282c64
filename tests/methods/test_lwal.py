"""Learning with adaptive labels: distances, centroid updates, repel term and schedule, by hand."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from labelemb.methods.base import LabelRangeError
from labelemb.methods.lwal import LearningWithAdaptiveLabels

M, D = 3, 2
W = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
B = np.array([0.1, 0.0, -0.1])
# z = W h + B: [2.1, 0, -2.1], [0.1, 3, 1.4], [1.1, 1, -0.6], [-0.9, -2, -0.1]
FEATURES = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0]])
Y_HAND = np.array([[2.0, 0.0, -2.0], [0.0, 3.0, 1.0], [-1.0, -2.0, 0.0]])


def make_head(scale: float = 1.0, **options) -> LearningWithAdaptiveLabels:
    """A double-precision head with hand-set weights ``scale * W`` (d = m)."""
    head = LearningWithAdaptiveLabels(D, M, **options).double()
    set_scale(head, scale)
    return head


def set_scale(head, scale: float) -> None:
    """Stands in for the optimiser changing the head between steps."""
    with torch.no_grad():
        head.head.weight.copy_(torch.tensor(scale * W))
        head.head.bias.copy_(torch.tensor(B))


def z_of(features=FEATURES, scale=1.0) -> np.ndarray:
    return np.asarray(features) @ (scale * W).T + B


def hand_ce(z: np.ndarray, targets, centres: np.ndarray) -> float:
    """Mean over counted rows of -log softmax(-||z_i - Y_c||)[y_i], squared distances floored at 1e-12."""
    losses = []
    for zi, y in zip(z, targets):
        if y == -100:
            continue
        neg = -np.sqrt(np.maximum(((zi - centres) ** 2).sum(1), 1e-12))
        losses.append(-(neg[y] - np.log(np.exp(neg).sum())))
    return float(np.mean(losses))


def hand_repel(z: np.ndarray, targets) -> float:
    """Mean of cos(z_i, z_j) over ordered pairs of counted rows with different labels."""
    values = []
    for zi, yi in zip(z, targets):
        for zj, yj in zip(z, targets):
            if -100 not in (yi, yj) and yi != yj:
                values.append(zi @ zj / np.linalg.norm(zi) / np.linalg.norm(zj))
    return float(np.mean(values))


def run(head, targets, features=FEATURES):
    return head(torch.tensor(np.asarray(features, dtype=np.float64)), torch.tensor(targets))


def test_label_vectors_start_one_hot_and_dim_factor_widens_them():
    head = LearningWithAdaptiveLabels(D, M)
    assert head.head.out_features == M
    torch.testing.assert_close(head.label_representation(), torch.eye(M))
    wide = LearningWithAdaptiveLabels(D, M, dim_factor=10)
    assert wide.head.out_features == 30 and wide.label_vectors.shape == (M, 30)
    expected = torch.zeros(M, 30)
    expected[:, :M] = torch.eye(M)  # one-hot in the first m dimensions, zero in the rest
    torch.testing.assert_close(wide.label_vectors, expected)
    out = wide(torch.randn(6, D), torch.tensor([0, 1, 2, 0, 1, 1]))
    assert out.logits.shape == (6, M) and wide.label_representation().shape == (M, 30)
    assert not torch.equal(wide.label_vectors, expected)  # the first step updated every class


def test_evaluation_loss_and_prediction_use_the_nearest_label_vector():
    head = make_head().eval()
    head.label_vectors.copy_(torch.tensor(Y_HAND))
    targets = [0, 1, 2, 1]
    out = run(head, targets)
    z = z_of()
    distances = np.sqrt(((z[:, None, :] - Y_HAND[None]) ** 2).sum(-1))
    np.testing.assert_allclose(out.logits.detach().numpy(), -distances, rtol=1e-12)
    np.testing.assert_allclose(head.logits(torch.tensor(FEATURES)).detach().numpy(), -distances, rtol=1e-12)
    assert out.logits.argmax(1).tolist() == distances.argmin(1).tolist() == [0, 1, 0, 2]
    assert out.loss.item() == pytest.approx(hand_ce(z, targets, Y_HAND), rel=1e-12)
    assert "repel" not in out.terms  # repel = 0: not computed


def test_training_step_sets_label_vectors_to_batch_centroids_and_uses_them():
    head = make_head()
    head.label_vectors.copy_(torch.tensor(Y_HAND))
    targets = [0, 1, 1, 0]  # class 2 is absent from the batch
    out = run(head, targets)
    z = z_of()
    expected = np.stack([(z[0] + z[3]) / 2, (z[1] + z[2]) / 2, Y_HAND[2]])  # class 2 keeps its vector
    np.testing.assert_allclose(head.label_vectors.numpy(), expected, rtol=1e-12)
    assert out.loss.item() == pytest.approx(hand_ce(z, targets, expected), rel=1e-10)
    assert int(head.step) == 1
    assert not head.label_vectors.requires_grad


def reference_loss(head, features: torch.Tensor, targets: torch.Tensor, through_centroids: bool):
    """Algorithm 1's update step written plainly, class by class, with or without centroid gradients."""
    z = head.head(features)
    rows = []
    for c in range(M):
        members = z[targets == c]
        rows.append(members.mean(0) if len(members) else head.label_vectors[c])
    centres = torch.stack(rows)
    centres = centres if through_centroids else centres.detach()
    distances = (z[:, None, :] - centres[None]).pow(2).sum(-1).sqrt()
    return torch.nn.functional.cross_entropy(-distances, targets)


def test_gradient_flows_through_the_centroids_in_the_updating_step():
    targets = torch.tensor([0, 1, 1, 0, 2, 2])  # no class of one: the plain formula's sqrt(0) is NaN
    features = torch.tensor(np.array([*FEATURES, [0.5, -0.5], [2.0, 1.0]]), requires_grad=True)
    head = make_head()
    head(features, targets).loss.backward()
    ours = features.grad.clone(), head.head.weight.grad.clone()
    for through, should_match in ((True, True), (False, False)):
        reference = make_head()
        features.grad = None
        reference_loss(reference, features, targets, through).backward()
        match = torch.allclose(ours[0], features.grad) and torch.allclose(ours[1], reference.head.weight.grad)
        assert match == should_match, through


def test_a_class_with_one_example_has_a_finite_gradient():
    head = make_head()
    features = torch.tensor(FEATURES, requires_grad=True)
    out = head(features, torch.tensor([0, 1, 2, 0]))  # rows 1 and 2 sit exactly on their centroid
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(features.grad).all()
    assert torch.isfinite(head.head.weight.grad).all()


def test_warmup_and_update_every_are_respected():
    head = make_head(warmup=2, update_every=3)
    targets = [0, 1, 2, 0]
    updates = []
    for step in range(8):
        scale = 1.0 + 0.25 * step  # the head changes every step, so every update moves Y
        set_scale(head, scale)
        before = head.label_vectors.clone()
        assert bool(head.is_update_step()) == (step in (2, 5))
        features = torch.tensor(FEATURES, requires_grad=True)
        out = head(features, torch.tensor(targets))
        updated = not torch.equal(head.label_vectors, before)
        updates.append(updated)
        z = z_of(scale=scale)
        if updated:
            centres = np.stack([(z[0] + z[3]) / 2, z[1], z[2]])
            np.testing.assert_allclose(head.label_vectors.numpy(), centres, rtol=1e-12)
        else:
            centres = before.numpy()
        assert out.loss.item() == pytest.approx(hand_ce(z, targets, centres), rel=1e-10), step
        if not updated:  # off-schedule steps treat Y as a constant
            out.loss.backward()
            detached = make_head(scale=scale)
            detached.label_vectors.copy_(before)
            plain = torch.tensor(FEATURES, requires_grad=True)
            detached.eval()(plain, torch.tensor(targets)).loss.backward()
            torch.testing.assert_close(features.grad, plain.grad)
    assert updates == [False, False, True, False, False, True, False, False]
    assert int(head.step) == 8


def test_repel_term_by_hand_excludes_same_label_pairs():
    head = make_head(repel=10.0)
    targets = [0, 1, 1, 0]
    out = run(head, targets)
    z = z_of()
    repel = hand_repel(z, targets)
    # Only pairs (0,1), (0,2), (3,1), (3,2) and their mirrors count.
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert repel == pytest.approx(
        np.mean([cos(z[0], z[1]), cos(z[0], z[2]), cos(z[3], z[1]), cos(z[3], z[2])])
    )
    assert out.terms["repel"].item() == pytest.approx(repel, rel=1e-12)
    centres = head.label_vectors.numpy()
    assert out.loss.item() == pytest.approx(hand_ce(z, targets, centres) + 10.0 * repel, rel=1e-10)
    # A batch of one class has no pair to repel.
    assert run(make_head(repel=10.0), [1, 1, 1, 1]).terms["repel"].item() == 0.0


def test_repel_is_added_in_update_steps_only_and_always_in_evaluation():
    head = make_head(repel=10.0, warmup=1)
    targets = [0, 1, 1, 0]
    z = z_of()
    repel = hand_repel(z, targets)
    warm = run(head, targets)  # step 0: warm-up, no update, no repel
    assert warm.loss.item() == pytest.approx(hand_ce(z, targets, np.eye(M)), rel=1e-10)
    assert warm.terms["repel"].item() == pytest.approx(repel, rel=1e-12)
    updating = run(head, targets)  # step 1: update and repel
    centres = head.label_vectors.numpy()
    assert updating.loss.item() == pytest.approx(hand_ce(z, targets, centres) + 10 * repel, rel=1e-10)
    head.eval()
    assert run(head, targets).loss.item() == pytest.approx(updating.loss.item(), rel=1e-10)


def test_ignored_rows_contribute_nothing_and_never_touch_the_state():
    targets = [0, 1, 1, 0]
    head = make_head(repel=10.0)
    base = run(head, targets)
    padded_head = make_head(repel=10.0)
    padded_features = np.array([*FEATURES, [7.0, -3.0], [0.2, 5.0]])
    padded = run(padded_head, [*targets, -100, -100], padded_features)
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-12)
    assert padded.terms["repel"].item() == pytest.approx(base.terms["repel"].item(), rel=1e-12)
    torch.testing.assert_close(padded_head.label_vectors, head.label_vectors)
    # A batch of ignored rows only leaves every label vector where it was.
    alone = make_head()
    out = run(alone, [-100, -100], [[7.0, -3.0], [0.2, 5.0]])
    assert out.loss.item() == 0.0
    torch.testing.assert_close(alone.label_vectors, torch.eye(M, dtype=torch.float64))


def test_evaluation_changes_nothing():
    head = make_head(repel=1.0)
    run(head, [0, 1, 2, 0])
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.eval()
    run(head, [2, 2, 1, 0])
    head.logits(torch.tensor(FEATURES))
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_state_dict_round_trip_resumes_exactly():
    head = make_head(warmup=1, update_every=2)
    for targets in ([0, 1, 2, 0], [1, 1, 0, 2]):
        run(head, targets)
    state = head.state_dict()
    assert {"label_vectors", "step"} <= set(state)
    resumed = LearningWithAdaptiveLabels(D, M, warmup=1, update_every=2).double()
    resumed.load_state_dict(state)
    outs = [[run(module, t).loss.item() for t in ([0, 0, 1, 2], [2, 1, 1, 0])] for module in (head, resumed)]
    assert outs[0] == outs[1]
    for key, value in head.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_options_and_labels_are_checked():
    for bad in ({"dim_factor": 0}, {"dim_factor": 2.5}, {"repel": -1.0}, {"warmup": -1}, {"update_every": 0}):
        with pytest.raises(ValueError):
            LearningWithAdaptiveLabels(D, M, **bad)
    head = make_head()
    with pytest.raises(LabelRangeError, match=r"\[3\].*outside \[0, 3\)"):
        run(head, [0, 1, 3, 1])
    assert int(head.step) == 0 and torch.equal(head.label_vectors, torch.eye(M, dtype=torch.float64))


TARGETS = [0, 1, 1, 0, 2, 1]
DIST_FEATURES = [*FEATURES.tolist(), [0.5, -0.5], [2.0, 1.0]]


def _distributed_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        head = make_head()
        rows = slice(rank * 3, rank * 3 + 3)  # rank 1 alone sees class 2; rank 0 sees no class 2
        out = head(torch.tensor(DIST_FEATURES, dtype=torch.float64)[rows], torch.tensor(TARGETS)[rows])
        out.loss.backward()
        grad = head.head.weight.grad.clone()
        torch.distributed.all_reduce(grad)  # what DistributedDataParallel does, then / world
        torch.save({"y": head.label_vectors, "grad": grad / world}, f"{out_dir}/rank{rank}.pt")
        # Both processes leave their collectives before either tears gloo down (else one may abort).
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    # Skip interpreter teardown: gloo's threads can abort a process that exits normally after
    # destroy_process_group, which mp.spawn would report as a failure of a test that passed.
    os._exit(0)


def test_centroids_and_gradients_do_not_depend_on_the_split_over_processes(tmp_path):
    single = make_head()
    run(single, TARGETS, DIST_FEATURES).loss.backward()
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(result["y"], single.label_vectors)
        torch.testing.assert_close(result["grad"], single.head.weight.grad)
