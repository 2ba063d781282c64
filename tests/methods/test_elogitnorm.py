"""ELogitNorm (Ding et al., CVPR 2026): the distance to the decision boundaries by hand for a linear
head (the point of each boundary nearest the feature, found by projection), the loss by hand in
NumPy and its gradients against finite differences and against the authors' equations written
out with explicit weight differences, ignored rows, equal logits, the registry's entry, and on
the digits a run killed mid-epoch resuming exactly and stacked seeds training as their own runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.batched_checks import assert_same_batched_run, run_both
from helpers.run_checks import assert_same_resumed_run, interrupt_at_first_checkpoint, read_metrics

from labelemb import methods
from labelemb.methods.elogitnorm import DISTANCE_EPS, boundary_distances, mean_boundary_distance

pytestmark = pytest.mark.usefixtures("one_thread")

D, M = 5, 4


def linear_head(seed: int = 0) -> methods.Method:
    """ELogitNorm on float64 features with a random output layer (no two weight rows equal)."""
    torch.manual_seed(seed)
    head = methods.build("elogitnorm", in_features=D, num_classes=M).double()
    with torch.no_grad():
        head.output.weight.normal_()
        head.output.bias.normal_()
    return head


def distance_by_projection(h: np.ndarray, w: np.ndarray, b: np.ndarray, c: int, k: int) -> float:
    """The distance from h to the hyperplane where classes c and k tie: the foot of the
    perpendicular p = h - t n (n the plane's normal), checked to lie on the plane, and ||h - p||."""
    normal, offset = w[c] - w[k], b[c] - b[k]
    t = (normal @ h + offset) / (normal @ normal)
    foot = h - t * normal
    assert abs((w[c] - w[k]) @ foot + b[c] - b[k]) < 1e-10  # on the boundary: c and k tie there
    return float(np.linalg.norm(h - foot))


def test_the_mean_distance_to_the_decision_boundaries_of_a_linear_head_by_hand():
    head = linear_head()
    w, b = head.output.weight.detach().numpy(), head.output.bias.detach().numpy()
    features = np.random.default_rng(1).normal(size=(7, D))
    logits = torch.from_numpy(features @ w.T + b)
    got = mean_boundary_distance(logits, head.output.weight.detach()).squeeze(-1).numpy()
    for i, h in enumerate(features):
        c = int(np.argmax(w @ h + b))
        want = sum(distance_by_projection(h, w, b, c, k) for k in range(M) if k != c) / M
        assert got[i] == pytest.approx(want, rel=1e-10)


def test_the_pairwise_distances_are_the_weight_rows_differences_norms_stacked_or_not():
    weight = torch.randn(3, M, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for seed_weight, stacked in zip(weight, boundary_distances(weight)):
        explicit = torch.linalg.vector_norm(seed_weight[:, None] - seed_weight[None], dim=-1)
        want = explicit + torch.eye(M, dtype=torch.float64)  # 1 on the diagonal, as theirs
        torch.testing.assert_close(boundary_distances(seed_weight), want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(stacked, want, rtol=1e-10, atol=1e-12)


def hand_loss(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """L = mean_i -log softmax(z_i / (D_i + eps))[y_i], D_i by loops over the classes."""
    losses = []
    for row, label in zip(z, y):
        c = int(np.argmax(row))
        distance = sum(abs(row[c] - row[k]) / np.linalg.norm(w[c] - w[k]) for k in range(M) if k != c) / M
        s = row / (distance + DISTANCE_EPS)
        losses.append(-(s[label] - s.max() - math.log(np.exp(s - s.max()).sum())))
    return float(np.mean(losses))


def theirs(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor):
    """The authors' equations with explicit weight differences (+ I on the diagonal), and our eps."""
    logits = features @ weight.T + bias
    denominator = torch.linalg.vector_norm(weight[:, None] - weight[None], dim=-1) + torch.eye(
        M, dtype=weight.dtype
    )
    top, predicted = logits.max(dim=1)
    scale = ((logits - top[:, None]).abs() / denominator[predicted]).mean(dim=1, keepdim=True)
    return F.cross_entropy(logits / (scale + DISTANCE_EPS), target)


def test_the_loss_is_the_hand_computation_and_its_gradients_the_authors_equations():
    head = linear_head()
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(9, D, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, M, (9,), generator=generator)
    out = head(features, target)
    w = head.output.weight.detach().numpy()
    z = (features @ head.output.weight.T + head.output.bias).detach().numpy()
    assert out.loss.item() == pytest.approx(hand_loss(z, target.numpy(), w), rel=1e-12)
    torch.testing.assert_close(out.logits, torch.from_numpy(z))  # predicts with the raw logits
    ours = torch.autograd.grad(out.loss, [features, head.output.weight, head.output.bias])
    weight = head.output.weight.detach().clone().requires_grad_()
    bias = head.output.bias.detach().clone().requires_grad_()
    rows = features.detach().clone().requires_grad_()
    reference = theirs(rows, weight, bias, target)
    for got, want in zip(ours, torch.autograd.grad(reference, [rows, weight, bias])):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert (ours[1] != 0).any()  # the weights learn through the distances too


def test_the_gradients_match_finite_differences():
    head = linear_head(4)
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(6, D, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, M, (6,), generator=generator)
    weight = head.output.weight.detach().clone().requires_grad_()
    bias = head.output.bias.detach().clone().requires_grad_()

    def loss(h, w, b):
        parameters = {"output.weight": w, "output.bias": b}
        return torch.func.functional_call(head, parameters, (h, target)).loss

    assert torch.autograd.gradcheck(loss, (features, weight, bias))


def test_ignored_rows_change_nothing_and_a_batch_of_them_is_a_zero_loss():
    head = linear_head()
    generator = torch.Generator().manual_seed(6)
    features = torch.randn(8, D, dtype=torch.float64, generator=generator)
    target = torch.randint(0, M, (8,), generator=generator)
    kept = torch.tensor([0, 1, 3, 4, 6, 7])
    alone = head(features[kept], target[kept])
    padded = target.clone()
    padded[[2, 5]] = -100
    rows = features.clone().requires_grad_()
    out = head(rows, padded)
    torch.testing.assert_close(out.loss, alone.loss, rtol=1e-12, atol=0)
    out.loss.backward()
    assert not rows.grad[[2, 5]].any()
    nothing = head(features.clone().requires_grad_(), torch.full((8,), -100))
    assert nothing.loss.item() == 0.0 and nothing.terms["boundary_distance"].item() == 0.0


def test_equal_logits_give_a_finite_loss_of_log_m():
    head = linear_head()
    with torch.no_grad():
        head.output.weight.zero_()
        head.output.bias.zero_()  # every logit 0: distance 0 to every boundary
    out = head(torch.randn(3, D, dtype=torch.float64), torch.tensor([0, 1, 2]))
    assert out.loss.item() == pytest.approx(math.log(M)) and out.terms["boundary_distance"].item() == 0.0


def test_registered_hyperparameter_free_stackable_for_class_rows_only():
    cls = methods.method_class("elogitnorm")
    assert cls.stackable and not cls.chunkable and cls.search_space == {}
    assert methods.options("elogitnorm") == {"init_std": None, "ignore_index": -100}
    assert "elogitnorm" in methods.serving("class") and "elogitnorm" not in methods.serving("token")
    assert "m x m" in methods.why_not_serving("elogitnorm", "token")
    with pytest.raises(ValueError, match=r"no option\(s\) tau") as caught:
        methods.build("elogitnorm", in_features=3, num_classes=4, tau=0.04)
    assert "\n" not in str(caught.value)


def test_a_run_killed_mid_epoch_resumes_exactly(small_config, digits, tmp_path):
    overrides = ("method.name=elogitnorm", "train.epochs=3", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    from labelemb.training import train

    train(clean, dataset=digits)
    at_crash = interrupt_at_first_checkpoint(crashed, digits, epoch=1)
    assert at_crash["epoch"] == 1 and at_crash["batch"] > 0
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())
    records = read_metrics(clean.run_dir())
    assert {"train_normalised_ce", "train_boundary_distance"} <= set(records[-1])
    assert records[-1]["test_error"] < 30.0  # it learns the digits


def test_batched_seeds_train_as_sequential_runs(small_config, digits, tmp_path):
    batched, sequential = run_both(small_config, tmp_path, digits, "method.name=elogitnorm")
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)
