"""AdaFocal (Ghosh, Schaaf & Gormley, NeurIPS 2022): the loss and its gradient by hand (float64) for
given gammas, a negative (inverse-focal) bin among them; the authors' loss averaged; the gamma
update by hand from given dev logits (equal-mass bins as numpy.interp reads them, the exp step, the
switch, the clips); dev rows ignored or not finite left out; the chunked head and micro-batches with
both kinds of bins; a run's gammas are the update of its dev logits; settings side by side, two
torchrun processes as one, and the refusal without a dev split. The contract every new peer owes is
in test_new_peers.py; the door itself in tests/training/test_dev_predictions.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.batched_checks import assert_settings_side_by_side_match_their_own_runs
from helpers.peer_checks import (
    IGNORING,
    LOGITS,
    TARGETS,
    M,
    assert_step_is,
    batch_by_hand,
    identity_head,
    mean_of_rows,
    softmax,
    step,
)
from helpers.run_checks import launch, read_metrics

from labelemb import methods
from labelemb.callbacks import Callback
from labelemb.data import Dataset
from labelemb.methods.adafocal import AdaFocal, bin_gaps, equal_mass_edges
from labelemb.tasks import Predictor
from labelemb.training import ConfigError, train

pytestmark = pytest.mark.usefixtures("one_thread")

#: Three bins, [0, 0.3), [0.3, 0.75), [0.75, 1]: the rows' gold probabilities (0.861, 0.072, 0.710,
#: 0.0024, 0.405) fall in bins 2, 0, 1, 0, 1; the middle bin is inverse focal.
EDGES = [0.3, 0.75]
GAMMAS = [2.0, -1.5, 0.5]


def head_with(gammas=GAMMAS, edges=EDGES, **options) -> AdaFocal:
    head = identity_head("adafocal", num_bins=len(gammas), **options)
    with torch.no_grad():
        head.gamma.copy_(torch.tensor(gammas, dtype=torch.float64))
        head.edges.copy_(torch.tensor(edges, dtype=torch.float64))
    return head


def hand_adafocal(z, y, gammas=GAMMAS, edges=EDGES):
    """``-w log p_y`` with ``w = (1 - p_y)^g`` (``g >= 0``) or ``(1 + p_y)^|g|`` (``g < 0``), ``g`` the
    gamma of the bin with ``e_b <= p_y < e_(b+1)``; the gradient by the chain rule through ``p_y``:
    ``dL/dz = dL/dp_y * p_y (e_y - p)``."""
    p = softmax(z)
    p_y = p[y]
    g = gammas[sum(edge <= p_y for edge in edges)]
    if g >= 0:
        w, dw = (1 - p_y) ** g, -g * (1 - p_y) ** (g - 1)
    else:
        w, dw = (1 + p_y) ** -g, -g * (1 + p_y) ** (-g - 1)
    dloss = -(dw * math.log(p_y) + w / p_y)
    return -w * math.log(p_y), dloss * p_y * (np.eye(M)[y] - p)


@pytest.mark.parametrize("targets", [TARGETS, IGNORING], ids=["all-rows", "an-ignored-row"])
def test_loss_and_gradient_match_the_hand_computation(targets):
    head = head_with()
    out, grad = step(head, targets=targets)
    assert_step_is(out, grad, *batch_by_hand(mean_of_rows(hand_adafocal), targets=targets))
    p_y = softmax(np.array(LOGITS))[range(5), TARGETS]
    assert head.row_gammas(torch.tensor(np.log(p_y))).tolist() == [0.5, 2.0, -1.5, 2.0, -1.5]
    kept = [i for i, y in enumerate(targets) if y != -100]
    assert out.terms["ce"].item() == pytest.approx(-np.mean(np.log(p_y[kept])), rel=1e-12)


def test_the_authors_loss_averaged():
    """Their AdaFocal.forward: ``-(1 - sign(g) pt + 1e-20)^|g| log pt``, pt not detached, the gamma
    of pt's bin, summed over the batch (ours: the mean)."""
    head = head_with()
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    logpt = torch.log_softmax(z, 1).gather(1, target[:, None]).view(-1)
    pt = logpt.exp()
    gamma = torch.tensor([GAMMAS[sum(edge <= p for edge in EDGES)] for p in pt.tolist()], dtype=torch.float64)
    theirs = (-((1 - torch.sign(gamma) * pt + 1e-20) ** gamma.abs()) * logpt).sum() / len(TARGETS)
    ours = head(z, target).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=0)
    torch.testing.assert_close(
        torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z), rtol=1e-12, atol=0
    )


def test_at_the_start_it_is_focal_loss_with_gamma_1():
    """Every bin's gamma is gamma_initial = 1 before the first update: FL-1."""
    ours, our_grad = step(identity_head("adafocal"))
    focal, focal_grad = step(identity_head("focal", gamma=1.0))
    assert ours.loss.item() == pytest.approx(focal.loss.item(), rel=1e-14)
    np.testing.assert_allclose(our_grad, focal_grad, rtol=1e-12, atol=1e-15)
    head = identity_head("adafocal")
    assert head.gamma.tolist() == [1.0] * 15
    assert head.edges.tolist() == [k * (1 / 15) for k in range(1, 15)]  # their b * (1 / B)


def test_a_gold_probability_on_an_edge_takes_the_upper_bin():
    head = head_with()
    on_edges = torch.tensor([0.3, 0.75], dtype=torch.float64).log()
    assert on_edges.exp().tolist() == EDGES  # exactly the edges, through the log
    assert head.row_gammas(on_edges).tolist() == [-1.5, 0.5]
    assert head.row_gammas(torch.tensor([0.0, -1e-300], dtype=torch.float64)).tolist() == [0.5, 0.5]
    assert head.row_gammas(torch.tensor([math.log(1e-9)], dtype=torch.float64)).tolist() == [2.0]


# ---------------------------------------------------------------- the update


def test_the_update_s_step_switch_and_clips_by_hand():
    """lam 1, switch 0.2, clips -2 and 20: g exp(lam gap) for g > 0, g exp(-lam gap) otherwise; then a
    |g| under 0.2 switches sign (to -0.2 from above 0, to 0.2 otherwise); then the clips."""
    head = identity_head("adafocal", num_bins=7)
    gamma = torch.tensor([1.0, 0.21, -0.21, -1.0, -1.5, 15.0, 1.0], dtype=torch.float64)
    gap = torch.tensor([0.1, -0.1, 0.1, -0.5, -0.5, 0.5, 0.0], dtype=torch.float64)
    want = [math.exp(0.1), -0.2, 0.2, -math.exp(0.5), -2.0, 20.0, 1.0]
    np.testing.assert_allclose(head.updated(gamma, gap).numpy(), want, rtol=1e-15, atol=0)
    other = identity_head("adafocal", num_bins=3, lam=2.0, switch_pt=0.5, gamma_min=-1.0, gamma_max=3.0)
    gamma = torch.tensor([1.0, -0.6, 2.0], dtype=torch.float64)
    gap = torch.tensor([-0.2, 0.1, 0.3], dtype=torch.float64)
    want = [math.exp(-0.4), 0.5, 3.0]  # 0.67; -0.6 e^-0.2 = -0.49 switches; 2 e^0.6 = 3.64 clipped
    np.testing.assert_allclose(other.updated(gamma, gap).numpy(), want, rtol=1e-15, atol=0)


def dev_split(n: int = 40, m: int = 4, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 2.5 * torch.randn(n, m, generator=generator, dtype=torch.float64)
    labels = torch.where(
        torch.rand(n, generator=generator) < 0.6,
        logits.argmax(-1),
        torch.randint(0, m, (n,), generator=generator),
    )
    return logits, labels


def update_by_hand(logits, labels, gammas, bins, lam=1.0, switch=0.2, low=-2.0, high=20.0):
    """The dev bins' edges (numpy.interp at k n / B of the sorted confidences), each bin's mean
    confidence less accuracy over (lower, upper], and each gamma's update, written out per bin."""
    p = softmax(logits.numpy())
    confidence, hits = p.max(1), p.argmax(1) == labels.numpy()
    n = len(confidence)
    edges = np.interp(np.linspace(0, n, bins + 1), np.arange(n), np.sort(confidence))
    new = []
    for b, gamma in enumerate(gammas):
        inside = (confidence > edges[b]) & (confidence <= edges[b + 1])
        gap = confidence[inside].mean() - hits[inside].mean() if inside.any() else 0.0
        moved = gamma * math.exp(lam * gap) if gamma > 0 else gamma * math.exp(-lam * gap)
        if abs(moved) < switch:
            moved = -switch if moved > 0 else switch
        new.append(max(min(moved, high), low))
    return new, edges


@pytest.mark.parametrize("bins", [1, 5, 15])
def test_the_update_from_dev_logits_by_hand(bins):
    logits, labels = dev_split()
    head = identity_head("adafocal", num_bins=bins, lam=3.0)
    start = torch.linspace(-1.9, 6.0, bins, dtype=torch.float64)
    with torch.no_grad():
        head.gamma.copy_(start)
    head.on_dev_predictions(logits, labels)
    want, edges = update_by_hand(logits, labels, start.tolist(), bins, lam=3.0)
    np.testing.assert_allclose(head.gamma.numpy(), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(head.edges.numpy(), edges[1:-1], rtol=1e-15, atol=0)
    if bins == 15:
        assert (head.gamma < 0).any() and (head.gamma > 0).any() and not torch.equal(head.gamma, start)


def test_equal_mass_edges_and_bins_are_numpy_s():
    """Edges by numpy.interp, ties and fewer values than bins included; a bin holds (lower, upper], so
    the least value lies in none; an empty bin's gap is 0."""
    for values in ([0.5, 0.9, 0.9, 0.9, 0.95, 1.0, 0.7], [0.4, 0.8], [0.6]):
        x = torch.tensor(values, dtype=torch.float64)
        want = np.interp(np.linspace(0, len(values), 6), np.arange(len(values)), np.sort(values))
        np.testing.assert_array_equal(equal_mass_edges(x, 5).numpy(), want)
    confidence = torch.tensor([0.5, 0.6, 0.7, 0.9], dtype=torch.float64)
    hits = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    bounds = torch.tensor([0.5, 0.65, 0.8, 0.85, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(bin_gaps(confidence, hits, bounds).numpy(), [0.6, -0.3, 0.0, -0.1], rtol=1e-15)


def test_dev_rows_ignored_or_not_finite_are_left_out():
    logits, labels = dev_split()
    clean = identity_head("adafocal", lam=2.0)
    clean.on_dev_predictions(logits[5:], labels[5:])
    dirty = identity_head("adafocal", lam=2.0)
    labels = labels.clone()
    labels[:3] = -100
    logits = logits.clone()
    logits[3, 1], logits[4, 0] = math.nan, math.inf
    dirty.on_dev_predictions(logits, labels)
    assert torch.equal(dirty.gamma, clean.gamma) and torch.equal(dirty.edges, clean.edges)
    nothing = identity_head("adafocal")
    nothing.on_dev_predictions(logits[:5], labels[:5])  # no row counts: nothing changes
    assert torch.equal(nothing.gamma, identity_head("adafocal").gamma)


# ---------------------------------------------------------------- both kinds of bins, every path


def mixed(**options) -> AdaFocal:
    """An 8-wide head of 12 classes with negative and positive gammas in bins set by hand."""
    torch.manual_seed(0)
    head = methods.build("adafocal", in_features=8, num_classes=12, num_bins=4, **options)
    with torch.no_grad():
        head.output.weight.mul_(4.0)
        head.gamma.copy_(torch.tensor([-1.5, 0.7, -0.4, 3.0], dtype=torch.float64))
        head.edges.copy_(torch.tensor([0.05, 0.2, 0.5], dtype=torch.float64))
    return head


def test_the_chunked_head_with_inverse_and_focal_bins_gives_the_step_at_once():
    whole, chunked = mixed(chunk_size=10**6), mixed(chunk_size=7)
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(41, 8, generator=generator)
    target = torch.randint(0, 12, (41,), generator=generator)
    with torch.no_grad():
        target[::3] = whole.logits(features[::3]).argmax(-1)
    target[[4, 20]] = -100
    gammas = whole.row_gammas(
        torch.log_softmax(whole.logits(features), -1).gather(1, target.clamp(min=0)[:, None])[:, 0]
    )
    assert (gammas < 0).sum() > 5 and (gammas > 0).sum() > 5
    grads = []
    for head in (whole, chunked):
        rows = features.clone().requires_grad_()
        out = head(rows, target)
        grads.append((out, torch.autograd.grad(out.loss, [rows, *head.parameters()])))
    (reference, want), (ours, got) = grads
    assert ours.logits is None
    torch.testing.assert_close(ours.loss, reference.loss, rtol=1e-5, atol=1e-6)
    for key in reference.terms:
        torch.testing.assert_close(ours.terms[key], reference.terms[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_micro_batches_with_inverse_and_focal_bins_add_up_to_the_batch():
    head = mixed().double()
    target = torch.randint(0, 12, (32,), generator=torch.Generator().manual_seed(4))
    target[:5] = -100
    features = torch.randn(32, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    items = (target != -100).sum()
    grads = []
    for parts in (1, 4):
        head.zero_grad(set_to_none=True)
        rows = features.clone().requires_grad_()
        for chunk, labels in zip(rows.chunk(parts), target.chunk(parts)):
            head.micro_batch_loss(chunk, labels, items).loss.backward()
        grads.append([rows.grad, *(p.grad.clone() for p in head.parameters())])
    for whole, micro in zip(*grads):
        torch.testing.assert_close(micro, whole, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- training


class DevLogits(Callback):
    """Each epoch's dev logits, as the task computes them, after the methods' update."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def setup(self, configs, dataset, task) -> None:
        self.task, self.dev = task, dataset.dev

    def on_epoch_end(self, runs) -> None:
        run = runs[0]
        self.seen.append(self.task.split_logits(Predictor(run.network, run.model, run.method), self.dev))


def test_a_run_s_gammas_are_the_update_of_its_dev_logits(small_config, digits):
    seen = DevLogits()
    config = small_config("method.name=adafocal", "train.epochs=2")
    train(config, dataset=digits, callbacks=[seen])
    state = torch.load(config.run_dir() / "checkpoint.pt", weights_only=True)["network"]
    gammas = [1.0] * 15
    for logits in seen.seen:
        gammas, edges = update_by_hand(logits.double(), digits.dev.labels, gammas, 15)
    np.testing.assert_allclose(state["method.gamma"].numpy(), gammas, rtol=1e-10)
    np.testing.assert_allclose(state["method.edges"].numpy(), edges[1:-1], rtol=1e-12)
    assert not np.allclose(gammas, 1.0)


def test_settings_side_by_side_match_their_own_runs(small_config, digits, tmp_path):
    settings = [{"lam": 0.5}, {"lam": 3.0}, {"lam": 1.0, "gamma_initial": -1.0}]
    assert_settings_side_by_side_match_their_own_runs(small_config, digits, tmp_path, "adafocal", settings)


def test_without_a_dev_split_it_is_refused_in_one_line(small_config, digits):
    no_dev = Dataset("digits", digits.train, None, digits.test, digits.class_names)
    with pytest.raises(ConfigError, match=r"^method 'adafocal' reads the dev split's predictions") as caught:
        train(small_config("method.name=adafocal"), dataset=no_dev)
    assert "\n" not in str(caught.value)


def test_two_torchrun_processes_match_one_process(tmp_path):
    """Every process computes the dev logits and takes process 0's: the gammas, and so the steps, are
    those of one process."""
    single, double = launch(tmp_path, "adafocal", 1), launch(tmp_path, "adafocal", 2)
    one, two = read_metrics(single), read_metrics(double)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        for key in ("train_loss", "train_adafocal"):
            assert abs(a[key] - b[key]) <= 1e-4 * abs(a[key]) + 1e-7, (a["step"], key)
        assert abs(a["test_error"] - b["test_error"]) <= 100 / 300 + 1e-9
    states = [torch.load(run / "checkpoint.pt", weights_only=True)["network"] for run in (single, double)]
    torch.testing.assert_close(states[1]["method.gamma"], states[0]["method.gamma"], rtol=1e-4, atol=1e-6)
    assert not torch.equal(states[0]["method.gamma"], torch.ones(15, dtype=torch.float64))
