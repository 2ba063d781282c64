"""Co-teaching (Han et al. 2018): its R(T) schedule, the exchange of small-loss rows between the
two networks, the two independent backbones the harness builds for it, and a short real run
that finishes, resumes from its checkpoint and predicts."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from helpers.batched_checks import assert_same_batched_run, assert_stacked_method_matches_each_seed, run_both
from helpers.run_checks import (
    assert_same_resumed_run,
    interrupt_at_first_checkpoint,
    load_weights,
    read_metrics,
)

import labelemb
from labelemb import methods
from labelemb.assembly import Network, build_network
from labelemb.assembly.network import Replicas
from labelemb.assembly.parts import Backbone, Optimiser, pretrained_part
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ("method.name=coteaching", "method.forget_rate=0.3", "method.gradual_epochs=1")


def coteaching(**options) -> methods.Method:
    return methods.build("coteaching", in_features=4, num_classes=3, **{"forget_rate": 0.5, **options})


# ---------------------------------------------------------------- R(T)


def test_the_forgotten_share_ramps_to_tau_over_t_k_epochs_as_r_of_t_says():
    method = coteaching(forget_rate=0.4, gradual_epochs=5)
    # R(T) = 1 - min(T / T_k * tau, tau): 1 - R(T) after T epochs.
    assert [method.forget_share(t) for t in range(7)] == pytest.approx(
        [0.0, 0.08, 0.16, 0.24, 0.32, 0.4, 0.4]
    )
    assert method.kept_rows(100, 0) == 100
    assert method.kept_rows(100, 2) == 84  # floor(0.84 * 100)
    assert method.kept_rows(100, 9) == 60
    assert method.kept_rows(7, 9) == 4  # floor(0.6 * 7)
    assert method.kept_rows(1, 9) == 1  # never an empty share


def test_a_run_shorter_than_t_k_reaches_tau_at_its_last_epoch_and_t_k_zero_at_once():
    short = coteaching(forget_rate=0.4, gradual_epochs=10, epochs=3)
    assert [short.forget_share(t) for t in range(3)] == pytest.approx([0.0, 0.2, 0.4])
    at_once = coteaching(forget_rate=0.4, gradual_epochs=0)
    assert at_once.forget_share(0) == pytest.approx(0.4)


def test_the_epoch_count_is_a_buffer_that_sets_how_many_rows_are_kept():
    method = coteaching(forget_rate=0.5, gradual_epochs=1)
    features, labels = torch.randn(10, 4), torch.randint(0, 3, (10,))
    before = method(features, labels)
    method.on_epoch_end()
    assert int(method.epoch) == 1 and "epoch" in method.state_dict()
    after = method(features, labels)
    first, second = (z.detach() for z in method.head_outputs(features))
    ce_1 = F.cross_entropy(first, labels, reduction="none")
    ce_2 = F.cross_entropy(second, labels, reduction="none")
    assert float(before.terms["network_2"]) == pytest.approx(float(ce_2.mean()), rel=1e-6)  # every row
    # After one epoch of a one-epoch ramp: network 2 learns from the 5 rows network 1 ranks lowest.
    kept_by_1 = ce_1.argsort()[:5]
    assert float(after.terms["network_2"]) == pytest.approx(float(ce_2[kept_by_1].mean()), rel=1e-6)
    fresh = coteaching(forget_rate=0.5, gradual_epochs=1)
    fresh.load_state_dict(method.state_dict())  # a resumed run keeps its place on the ramp
    assert torch.equal(fresh(features, labels).loss, after.loss)


def test_the_forget_rate_comes_from_the_option_else_from_the_run_s_noise_rate():
    assert coteaching(forget_rate=None, noise_rate=0.35).forget_rate == 0.35
    assert coteaching(forget_rate=0.1, noise_rate=0.35).forget_rate == 0.1
    with pytest.raises(ValueError, match="set forget_rate="):
        coteaching(forget_rate=None)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
            coteaching(forget_rate=bad)
    with pytest.raises(ValueError, match="in_features must be even"):
        methods.build("coteaching", in_features=5, num_classes=3, forget_rate=0.2)


# ---------------------------------------------------------------- the exchange


def test_each_network_learns_only_from_the_rows_its_peer_keeps():
    method = coteaching(forget_rate=0.5, gradual_epochs=0)  # keeps 3 of 6
    with torch.no_grad():
        for head in (method.head_1, method.head_2):
            head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
            head.bias.zero_()
    # Every label is 0: network 1 finds rows 0-2 easy (large first logit), network 2 rows 3-5.
    first = torch.tensor([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    features = torch.cat([first, first.flip(0)], dim=1).requires_grad_()
    labels = torch.zeros(6, dtype=torch.long)
    out = method(features, labels)
    out.loss.backward()

    z_1, z_2 = first @ torch.eye(3, 2).T, first.flip(0) @ torch.eye(3, 2).T
    want_1 = F.cross_entropy(z_1[3:], labels[3:])  # network 1 on network 2's picks
    want_2 = F.cross_entropy(z_2[:3], labels[:3])  # network 2 on network 1's picks
    torch.testing.assert_close(out.terms["network_1"], want_1)
    torch.testing.assert_close(out.terms["network_2"], want_2)
    torch.testing.assert_close(out.loss.detach(), want_1 + want_2)
    grad = features.grad
    # Network 1's columns get gradient from rows 3-5 only, network 2's from rows 0-2 only.
    assert not grad[:3, :2].any() and grad[3:, :2].abs().sum(-1).gt(0).all()
    assert not grad[3:, 2:].any() and grad[:3, 2:].abs().sum(-1).gt(0).all()
    torch.testing.assert_close(out.logits, z_1)  # prediction: network 1


def test_rows_that_do_not_count_are_never_kept():
    method = coteaching(forget_rate=0.5, gradual_epochs=0)
    features = torch.randn(8, 4, requires_grad=True)
    labels = torch.randint(0, 3, (8,))
    labels[:4] = -100
    out = method(features, labels)
    out.loss.backward()
    assert not features.grad[:4].any()
    assert torch.isfinite(out.loss)


def test_the_kept_share_is_of_the_rows_that_count_as_their_int_of_n_valid():
    # 10 rows, 4 ignored: N_valid = 6, tau = 0.5 keeps int(0.5 * 6) = 3 (of all 10 rows it would keep 5,
    # every valid row but one).
    method = coteaching(forget_rate=0.5, gradual_epochs=0)
    torch.manual_seed(0)
    features = torch.randn(10, 4)
    labels = torch.randint(0, 3, (10,))
    ignored = torch.tensor([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=torch.bool)
    out = method(features, labels.masked_fill(ignored, -100))
    first, second = (z.detach() for z in method.head_outputs(features))
    ce_1 = F.cross_entropy(first, labels, reduction="none").masked_fill(ignored, float("inf"))
    ce_2 = F.cross_entropy(second, labels, reduction="none").masked_fill(ignored, float("inf"))
    kept_by_1, kept_by_2 = ce_1.argsort()[:3], ce_2.argsort()[:3]
    assert float(out.terms["network_2"]) == pytest.approx(float(ce_2[kept_by_1].mean()), rel=1e-6)
    assert float(out.terms["network_1"]) == pytest.approx(float(ce_1[kept_by_2].mean()), rel=1e-6)
    kept = method.kept_count(labels, ~ignored * 1.0, 0)
    assert kept.dtype == torch.int64 and int(kept) == 3
    # One count per seed when seeds are stacked, and never none.
    weights = torch.tensor([[1.0] * 10, [1.0] * 7 + [0.0] * 3, [0.0] * 10])
    assert method.kept_count(labels.expand(3, 10), weights, 0).tolist() == [5, 3, 1]


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
def test_stacked_seeds_match_each_seed_s_own_method(ignored):
    assert_stacked_method_matches_each_seed("coteaching", {"forget_rate": 0.4, "gradual_epochs": 1}, ignored)


# ---------------------------------------------------------------- two backbones


def test_the_harness_builds_two_independent_backbones_side_by_side(small_config, digits):
    config = small_config(*RUN)
    model, method = build_network(config, digits)
    assert isinstance(model, Replicas) and len(model.copies) == 2
    one, two = model.copies
    assert one.out_features == two.out_features == 32 and model.out_features == 64
    assert method.in_features == 64
    assert not torch.equal(one.layers[1].weight, two.layers[1].weight)  # each drawn on its own

    network = Network(model, method)
    images = digits.train.images[:16]
    features = model(images)
    torch.testing.assert_close(features, torch.cat([one(images), two(images)], dim=-1))
    # Head 1's scores reach backbone 1 only (backbone 2 gets the zeros of the unread columns).
    method.logits(features).sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in one.parameters())
    assert all(p.grad is None or not p.grad.any() for p in two.parameters())
    assert all(p.grad is None for p in method.head_2.parameters())
    # A step trains both: each backbone from its own head's loss.
    network.zero_grad(set_to_none=True)
    network(images, digits.train.labels[:16]).loss.backward()
    assert all(p.grad is not None and p.grad.any() for p in two.parameters())


def test_a_frozen_backbone_gives_each_network_its_own_dense_layer(small_config, digits):
    config = small_config(*RUN, "model.freeze=true", "model.dense=8")
    model, method = build_network(config, _features(digits))
    assert isinstance(model, Replicas) and method.in_features == 16
    one, two = model.copies
    assert not torch.equal(one.layers[1].weight, two.layers[1].weight)


def _features(digits):
    """What building a frozen run's network reads of its data: the features' width."""

    class Shape:
        input_shape = (12,)
        class_names = digits.class_names
        num_classes = digits.num_classes
        train = range(10)

    return Shape()


def test_a_dense_layer_in_any_replica_trains_with_the_head():
    assert pretrained_part("model.copies.1.backbone.layers.1.weight")
    assert not pretrained_part("model.copies.1.dense.0.weight")
    assert not pretrained_part("model.dense.0.weight") and pretrained_part("model.layers.1.weight")
    assert not pretrained_part("method.head_1.weight")
    model = Backbone("mlp", {"hidden": [8]}, dense=4).build((1, 8, 8), 2)
    named = [(f"model.{name}", p) for name, p in model.named_parameters()]
    backbone, head = Optimiser(lr=1e-3, backbone_lr_given=1e-4).groups(named)
    assert len(backbone["params"]) == 4 and len(head["params"]) == 4  # each copy: 2 layers, 1 dense


# ---------------------------------------------------------------- a real run


def test_a_short_run_finishes_resumes_from_its_checkpoint_and_predicts(small_config, digits, tmp_path):
    overrides = (*RUN, "train.epochs=3", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    summary = train(clean, dataset=digits)
    assert summary["selected_test_error"] < 85.0
    losses = [
        record["train_network_2"] for record in read_metrics(clean.run_dir()) if "train_network_2" in record
    ]
    assert losses, "the run logs each network's loss"

    interrupt_at_first_checkpoint(crashed, digits, epoch=1)  # past an epoch's end: the ramp has moved
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())

    predictor = labelemb.load(str(clean.run_dir()))
    scores = torch.as_tensor(predictor.logits(digits.test.images))
    error = 100.0 * float((scores.argmax(-1) != digits.test.labels).float().mean())
    final = json.loads((clean.run_dir() / "summary.json").read_text())["final_test_error"]
    assert error == pytest.approx(final)


def test_a_run_on_a_frozen_backbone_trains_both_heads_and_predicts_with_the_first(
    small_config, digits, tmp_path, monkeypatch
):
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    config = small_config(*RUN, "model.freeze=true", "model.dense=16", "train.lr=0.01")
    summary = train(config, dataset=digits)
    weights = load_weights(config.run_dir())
    assert {"model.copies.0.layers.1.weight", "model.copies.1.layers.1.weight"} <= weights.keys()
    predictor = labelemb.load(str(config.run_dir()))
    scores = torch.as_tensor(predictor.logits(digits.test.images))
    error = 100.0 * float((scores.argmax(-1) != digits.test.labels).float().mean())
    assert error == pytest.approx(summary["final_test_error"])


def test_seeds_side_by_side_match_their_own_runs(small_config, digits, tmp_path):
    batched, sequential = run_both(small_config, tmp_path, digits, *RUN)
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)
