"""The robust-loss peers for noisy labels (issue 78): gce, sce, nce_rce, bootstrap_soft, bootstrap_hard,
nls and elr.

Each loss against numbers worked out by hand on one row, against the authors' formula written
again here in plain torch (float64, an identity output layer, so the features are the logits), its
gradient in the logits in closed form, ignored rows, stacked seeds against separate runs, and
ELR's per-example targets: updated every step, kept by ignored rows, held by a checkpoint.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers.batched_checks import assert_stacked_method_matches_each_seed
from helpers.peer_checks import LOGITS, TARGETS, identity_head

from labelemb import methods
from labelemb.methods.registry import search_space

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["gce", "sce", "nce_rce", "bootstrap_soft", "bootstrap_hard", "nls", "elr"]
#: A setting of each in which each of its terms is at work (ELR is told the training set's size).
ACTIVE = {
    "gce": {"q": 0.5},
    "sce": {"alpha": 0.3, "beta": 0.7},
    "nce_rce": {"alpha": 2.0, "beta": 0.5},
    "bootstrap_soft": {"beta": 0.7},
    "bootstrap_hard": {"beta": 0.6},
    "nls": {"smooth_rate": -0.5},
    "elr": {"num_examples": 12, "beta": 0.6, "lam": 2.0},
}
A = -math.log(1e-4)  # the reverse cross-entropy's log 0, from the authors' one-hot floor


def head3(name: str, **options) -> methods.Method:
    """Method ``name`` on 3 classes whose output layer is the identity (float64)."""
    head = methods.build(name, in_features=3, num_classes=3, **options).double()
    with torch.no_grad():
        head.output.weight.copy_(torch.eye(3))
        head.output.bias.zero_()
    return head


def one_row(head: methods.Method, label: int, **kwargs) -> float:
    """The loss on one row whose softmax is (0.6, 0.2, 0.2): logits (log 3, 0, 0)."""
    z = torch.tensor([[math.log(3.0), 0.0, 0.0]], dtype=torch.float64)
    return head(z, torch.tensor([label]), **kwargs).loss.item()


# ---------------------------------------------------------------- by hand: p = (0.6, 0.2, 0.2)


def test_each_loss_on_one_row_worked_out_by_hand():
    # log 0.6 = -0.5108256238, log 0.2 = -1.6094379124, A = -log 1e-4 = 9.2103403720.
    # gce, q = 0.7: 0.6^0.7 = exp(0.7 log 0.6) = 0.6993681904; (1 - 0.6993681904) / 0.7.
    assert one_row(head3("gce"), 0) == pytest.approx(0.4294740137, abs=1e-10)
    # sce: 0.1 * 0.5108256238 + 1 * A (1 - 0.6) = 0.0510825624 + 3.6841361488.
    assert one_row(head3("sce"), 0) == pytest.approx(3.7352187112, abs=1e-10)
    # nce: log 0.6 / (log 0.6 + 2 log 0.2) = 0.5108256238 / 3.7297014486 = 0.1369615319; + rce 3.6841361488.
    assert one_row(head3("nce_rce"), 0) == pytest.approx(3.8210976806, abs=1e-10)
    # soft, beta 0.95: 0.95 * 0.5108256238 + 0.05 * H(p),
    # H(p) = 0.6 * 0.5108256238 + 0.4 * 1.6094379124 = 0.9502705392.
    assert one_row(head3("bootstrap_soft"), 0) == pytest.approx(0.5327978695, abs=1e-10)
    # hard, beta 0.8, label 1 (the argmax is class 0): 0.8 * 1.6094379124 + 0.2 * 0.5108256238.
    assert one_row(head3("bootstrap_hard"), 1) == pytest.approx(1.3897154547, abs=1e-10)
    # nls, r = -0.2: 1.2 * 0.5108256238 - 0.2 * (0.5108256238 + 2 * 1.6094379124) / 3
    #              = 0.6129907485 - 0.2486467632.
    assert one_row(head3("nls"), 0) == pytest.approx(0.3643439853, abs=1e-10)
    # elr, beta 0.7, lam 3, example 4 seen twice with the same p: t = 0.3 p = (0.18, 0.06, 0.06),
    # <t, p> = 0.132; then t = 0.7 t + 0.3 p = (0.306, 0.102, 0.102), <t, p> = 0.2244.
    elr = head3("elr", num_examples=5).train()
    index = torch.tensor([4])
    # 0.5108256238 + 3 log(1 - 0.132) = 0.5108256238 - 0.4246906930;
    # 0.5108256238 + 3 log(1 - 0.2244) = 0.5108256238 - 0.7623550668.
    assert one_row(elr, 0, index=index) == pytest.approx(0.0861349308, abs=1e-10)
    assert one_row(elr, 0, index=index) == pytest.approx(-0.2515294431, abs=1e-10)
    assert elr.soft_targets[4].tolist() == pytest.approx([0.306, 0.102, 0.102], abs=1e-12)
    assert not elr.soft_targets[:4].any()


# ---------------------------------------------------------------- the authors' formulas, in plain torch


def authors_gce(z, y, q=0.7):
    """Active-Passive-Losses' GeneralizedCrossEntropy: the softmax clamped at 1e-7, (1 - p_y^q) / q."""
    p = F.softmax(z, dim=1).clamp(min=1e-7, max=1.0)
    return ((1.0 - p[torch.arange(len(y)), y] ** q) / q).mean()


def authors_rce(z, y):
    """Their ReverseCrossEntropy: -sum_k p_k log q_k with the one-hot q clamped at 1e-4."""
    p = F.softmax(z, dim=1).clamp(min=1e-7, max=1.0)
    q = F.one_hot(y, z.shape[1]).to(z.dtype).clamp(min=1e-4, max=1.0)
    return (-(p * q.log()).sum(dim=1)).mean()


def authors_nce(z, y):
    """Their NormalizedCrossEntropy: -log p_y over -sum_k log p_k."""
    log_p = F.log_softmax(z, dim=1)
    onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
    return (-(onehot * log_p).sum(dim=1) / -log_p.sum(dim=1)).mean()


def reed_bootstrap(z, y, beta, hard):
    """Reed et al.'s objective: -sum_k (beta t_k + (1 - beta) b_k) log p_k, b = p or onehot(argmax p)."""
    log_p = F.log_softmax(z, dim=1)
    p = log_p.exp()
    belief = F.one_hot(p.argmax(dim=1), z.shape[1]).to(z.dtype) if hard else p
    target = beta * F.one_hot(y, z.shape[1]).to(z.dtype) + (1.0 - beta) * belief
    return (-(target * log_p).sum(dim=1)).mean()


def authors_gls(z, y, smooth_rate):
    """Their loss_gls: (1 - r) nll + r mean_k(-log p_k), summed over the batch over its size."""
    log_p = F.log_softmax(z, dim=-1)
    nll = -log_p.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
    loss = (1.0 - smooth_rate) * nll + smooth_rate * -log_p.mean(dim=-1)
    return loss.sum() / len(loss)


AUTHORS = {
    "gce": lambda z, y: authors_gce(z, y, q=0.5),
    "sce": lambda z, y: 0.3 * F.cross_entropy(z, y) + 0.7 * authors_rce(z, y),
    "nce_rce": lambda z, y: 2.0 * authors_nce(z, y) + 0.5 * authors_rce(z, y),
    "bootstrap_soft": lambda z, y: reed_bootstrap(z, y, 0.7, hard=False),
    "bootstrap_hard": lambda z, y: reed_bootstrap(z, y, 0.6, hard=True),
    "nls": lambda z, y: authors_gls(z, y, -0.5),
}


@pytest.mark.parametrize("name", list(AUTHORS))
def test_loss_and_gradient_are_the_authors_formula(name):
    # Every probability of these rows is far above the authors' 1e-7 clamp, where theirs is exact.
    head = identity_head(name, **ACTIVE[name])
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(TARGETS)
    ours = head(z, y).loss
    (ours_grad,) = torch.autograd.grad(ours, z)
    theirs = AUTHORS[name](z, y)
    (theirs_grad,) = torch.autograd.grad(theirs, z)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-10, atol=1e-14)


class AuthorsELR:
    """The authors' elr_loss, written again: a table of targets (theirs float32; here the float64 of
    the identity head's tables), updated before it is read."""

    def __init__(self, num_examples, num_classes, beta, lam):
        self.target = torch.zeros(num_examples, num_classes, dtype=torch.float64)
        self.beta, self.lam = beta, lam

    def __call__(self, index, output, label):
        y_pred = F.softmax(output, dim=1).clamp(1e-4, 1.0 - 1e-4)
        fresh = y_pred.detach()
        normalised = fresh / fresh.sum(1, keepdim=True)
        self.target[index] = self.beta * self.target[index] + (1 - self.beta) * normalised
        reg = (1 - (self.target[index] * y_pred).sum(dim=1)).log().mean()
        return F.cross_entropy(output, label) + self.lam * reg


def test_elr_follows_the_authors_loss_over_steps_and_epochs():
    torch.manual_seed(0)
    head = identity_head("elr", num_examples=12, beta=0.6, lam=2.0).train()
    theirs = AuthorsELR(12, 4, 0.6, 2.0)
    clamped = 0
    for step in range(6):
        index = torch.randperm(12)[:5]
        z = (3.0 * torch.randn(5, 4, dtype=torch.float64)).requires_grad_()
        p = F.softmax(z.detach(), dim=1)
        clamped += int(((p < 1e-4) | (p > 1 - 1e-4)).sum())
        y = torch.randint(0, 4, (5,))
        ours = head(z, y, index=index).loss
        (ours_grad,) = torch.autograd.grad(ours, z)
        reference = theirs(index, z, y)
        (theirs_grad,) = torch.autograd.grad(reference, z)
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-15, msg=f"step {step}")
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-10, atol=1e-14, msg=f"step {step}")
        # Our p is exp(log_softmax), theirs softmax: the targets agree to rounding.
        torch.testing.assert_close(head.soft_targets, theirs.target, rtol=1e-14, atol=1e-16)
        if step % 2:
            head.on_epoch_end()  # one process: the epoch's end changes no target
    assert int(head.epoch) == 3
    assert clamped > 0  # the clamp and its zero gradient were at work


# ---------------------------------------------------------------- gradients in closed form


def probabilities() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.tensor(LOGITS, dtype=torch.float64)
    p = F.softmax(z, dim=1)
    return z, p, F.one_hot(torch.tensor(TARGETS), 4).double()


def gradient(name: str, **options) -> torch.Tensor:
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    loss = identity_head(name, **options)(z, torch.tensor(TARGETS)).loss
    return torch.autograd.grad(loss, z)[0] * len(TARGETS)  # each row's own gradient


def test_gradients_in_the_logits_are_the_closed_forms():
    _, p, e = probabilities()
    p_y = (p * e).sum(1, keepdim=True)
    argmax = F.one_hot(p.argmax(1), 4).double()
    # gce: the cross-entropy's gradient weighted by p_y^q.
    torch.testing.assert_close(gradient("gce", q=0.5), p_y**0.5 * (p - e))
    # sce: (alpha + beta A p_y)(p - e); nce_rce's rce part alone is beta A p_y (p - e).
    torch.testing.assert_close(gradient("sce", alpha=0.3, beta=0.7), (0.3 + 0.7 * A * p_y) * (p - e))
    # soft, the target detached: p - beta e - (1 - beta) sg(p); hard: p - beta e - (1 - beta) onehot(argmax).
    torch.testing.assert_close(gradient("bootstrap_soft", beta=0.7, detach=True), p - 0.7 * e - 0.3 * p)
    torch.testing.assert_close(gradient("bootstrap_hard", beta=0.6), p - 0.6 * e - 0.4 * argmax)
    # soft, differentiated (the paper's minimum-entropy form): CE's plus (1 - beta) dH/dz = -p (log p + H).
    entropy = -(p * p.log()).sum(1, keepdim=True)
    want = 0.7 * (p - e) - 0.3 * p * (p.log() + entropy)
    torch.testing.assert_close(gradient("bootstrap_soft", beta=0.7), want)
    # nls: p minus the smoothed target, (1 - r) e + r / m, whatever the sign of r.
    torch.testing.assert_close(gradient("nls", smooth_rate=-0.5), p - 1.5 * e + 0.5 / 4)


def test_elr_regulariser_gradient_pulls_towards_the_target():
    # Liu et al.'s gradient of log(1 - <t, p>) in z: -p * (t - <t, p>) / (1 - <t, p>) (probabilities
    # inside the clamp, t held), so each row's gradient is CE's (p - e) plus lam times it.
    z, p, e = probabilities()
    head = identity_head("elr", num_examples=5, beta=0.6, lam=2.0).train()
    index = torch.arange(5)
    head(z, torch.tensor(TARGETS), index=index)  # first visit: t = 0.4 p
    target = head.soft_targets.clone()
    logits = z.clone().requires_grad_()
    loss = head(logits, torch.tensor(TARGETS), index=index).loss  # t <- 0.6 t + 0.4 p = 0.64 p
    (grad,) = torch.autograd.grad(loss, logits)
    target = 0.6 * target + 0.4 * p
    agreement = (target * p).sum(1, keepdim=True)
    want = (p - e) - 2.0 * p * (target - agreement) / (1 - agreement)
    torch.testing.assert_close(grad * 5, want, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- ignored rows and stacked seeds


@pytest.mark.parametrize("name", NAMES)
def test_ignored_rows_change_neither_the_loss_nor_any_state(name):
    ignoring = identity_head(name, **ACTIVE[name]).train()
    kept = identity_head(name, **ACTIVE[name]).train()
    z = torch.tensor(LOGITS, dtype=torch.float64)
    y = torch.tensor(TARGETS)
    index = {"index": torch.tensor([7, 3, 0, 11, 5])} if name == "elr" else {}
    y_ignored = y.clone()
    y_ignored[[1, 3]] = -100
    counted = y_ignored != -100
    got = ignoring(z, y_ignored, **index)
    want = kept(z[counted], y[counted], **{k: v[counted] for k, v in index.items()})
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-12, atol=0)
    for key, value in want.terms.items():
        torch.testing.assert_close(got.terms[key], value, rtol=1e-12, atol=0)
    for key, value in kept.state_dict().items():
        torch.testing.assert_close(ignoring.state_dict()[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
@pytest.mark.parametrize("name", NAMES)
def test_stacked_seeds_give_each_seeds_own_run(name, ignored):
    options = {**ACTIVE[name], **({"num_examples": 60} if name == "elr" else {})}
    if name == "nls":
        options["warmup_epochs"] = 1  # the epoch's end switches the smoothing on
    assert_stacked_method_matches_each_seed(name, options, ignored)


# ---------------------------------------------------------------- nls's warm-up, elr's state


def test_nls_trains_on_the_cross_entropy_for_its_warm_up_epochs():
    head = identity_head("nls", smooth_rate=-0.5, warmup_epochs=2)
    z = torch.tensor(LOGITS, dtype=torch.float64)
    y = torch.tensor(TARGETS)
    for _ in range(2):
        out = head(z, y)
        torch.testing.assert_close(out.loss, F.cross_entropy(z, y), rtol=1e-12, atol=0)
        head.on_epoch_end()
    torch.testing.assert_close(head(z, y).loss, authors_gls(z, y, -0.5), rtol=1e-12, atol=0)
    assert "epochs" not in methods.options("nls")  # its loss never depends on the run's length


def test_elr_targets_survive_a_checkpoint_and_the_run_continues_exactly():
    torch.manual_seed(1)
    head = identity_head("elr", num_examples=12).train()
    steps = [(torch.randperm(12)[:6], torch.randn(6, 4, dtype=torch.float64)) for _ in range(4)]
    labels = torch.randint(0, 4, (6,))
    for index, z in steps[:2]:
        head(z, labels, index=index)
    head.on_epoch_end()
    state = head.state_dict()
    assert {"soft_targets", "pending", "recorded_epoch", "example_label", "epoch"} <= set(state)
    resumed = identity_head("elr", num_examples=12).train()
    resumed.load_state_dict(state)
    assert resumed.soft_targets.any() and torch.equal(resumed.soft_targets, head.soft_targets)
    for index, z in steps[2:]:
        torch.testing.assert_close(resumed(z, labels, index=index).loss, head(z, labels, index=index).loss)
    for key, value in head.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_elr_in_evaluation_reads_its_targets_and_writes_none():
    head = identity_head("elr", num_examples=5).train()
    z, y = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGETS)
    head(z, y, index=torch.arange(5))
    before = {k: v.clone() for k, v in head.state_dict().items()}
    head.eval()
    assert head(z, y, index=torch.arange(5)).terms["elr"] < 0
    torch.testing.assert_close(head(z, y).loss, F.cross_entropy(z, y), rtol=1e-12, atol=0)
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key
    with pytest.raises(ValueError, match="needs index= in training"):
        head.train()(z, y)


#: Five examples' fixed logits and labels, and who sees which in two epochs: one process sees all;
#: of two, each sees in the second epoch the examples the other saw in the first.
EXAMPLE_LOGITS = 2.0 * torch.randn(5, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
EXAMPLE_LABELS = torch.tensor([0, 3, 1, 1, 2])
SHARES = [[[0, 2, 4], [1, 3]], [[1, 3], [0, 2, 4]]]  # SHARES[process][epoch]


def elr_epoch(head: methods.Method, examples: list[int], epoch: int) -> None:
    index = torch.tensor(examples)
    head(EXAMPLE_LOGITS[index] + 0.5 * epoch, EXAMPLE_LABELS[index], index=index)
    head.on_epoch_end()


def _elr_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        head = identity_head("elr", num_examples=5).train()
        for epoch in range(2):
            elr_epoch(head, SHARES[rank][epoch], epoch)
        torch.save(head.state_dict(), f"{out_dir}/rank{rank}.pt")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    os._exit(0)  # as tests/methods/test_pskd.py's worker: gloo's threads can abort a normal exit


def test_elr_targets_are_merged_over_processes_at_each_epoch_end(tmp_path):
    single = identity_head("elr", num_examples=5).train()
    for epoch in range(2):
        index = torch.tensor([0, 2, 4, 1, 3])
        single(EXAMPLE_LOGITS[index] + 0.5 * epoch, EXAMPLE_LABELS[index], index=index)
        single.on_epoch_end()
    mp.spawn(_elr_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(state["soft_targets"], single.soft_targets, rtol=0, atol=0)
        assert torch.equal(state["example_label"], single.example_label)


# ---------------------------------------------------------------- registry, options, spaces


def test_defaults_serving_and_search_spaces():
    assert methods.options("gce")["q"] == 0.7
    assert (methods.options("sce")["alpha"], methods.options("sce")["beta"]) == (0.1, 1.0)
    assert (methods.options("nce_rce")["alpha"], methods.options("nce_rce")["beta"]) == (1.0, 1.0)
    soft, hard = methods.options("bootstrap_soft"), methods.options("bootstrap_hard")
    assert (soft["beta"], soft["detach"], hard["beta"]) == (0.95, False, 0.8)
    assert methods.options("nls")["smooth_rate"] == -0.2 and methods.options("nls")["warmup_epochs"] == 0
    assert (methods.options("elr")["beta"], methods.options("elr")["lam"]) == (0.7, 3.0)
    for name in NAMES:
        assert methods.method_class(name).stackable and name in methods.serving("class")
        assert (name in methods.serving("token")) == (name != "elr")
    assert methods.method_class("elr").needs_index
    assert {name: set(search_space(name)) for name in NAMES} == {
        "gce": {"q"},
        "sce": {"alpha", "beta"},
        "nce_rce": {"alpha", "beta"},
        "bootstrap_soft": {"beta"},
        "bootstrap_hard": {"beta"},
        "nls": {"smooth_rate"},
        "elr": {"beta", "lam"},
    }


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gce", {"q": 0.0}, "q must lie in"),
        ("gce", {"q": 1.5}, "q must lie in"),
        ("sce", {"alpha": 0.0, "beta": 0.0}, "both 0"),
        ("sce", {"beta": -1.0}, "beta"),
        ("sce", {"target_floor": 1.0}, "target_floor"),
        ("nce_rce", {"alpha": float("nan")}, "alpha"),
        ("bootstrap_soft", {"beta": 1.2}, "beta"),
        ("bootstrap_hard", {"beta": -0.1}, "beta"),
        ("nls", {"smooth_rate": 1.5}, "smooth_rate"),
        ("nls", {"warmup_epochs": -1}, "warmup_epochs"),
        ("elr", {"num_examples": 8, "beta": 1.0}, "momentum"),
        ("elr", {"num_examples": 8, "lam": -1.0}, "lam"),
        ("elr", {"num_examples": 0}, "num_examples"),
    ],
)
def test_bad_options_are_refused_in_one_line(name, options, message):
    with pytest.raises(ValueError, match=message):
        methods.build(name, in_features=4, num_classes=3, **options)
