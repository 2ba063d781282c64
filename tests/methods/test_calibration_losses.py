"""focal (and flsd53), mbls, logitnorm and label_relaxation against hand computations in NumPy.

Each loss and its gradient in the logits is computed by hand (float64, an identity output layer, so
the features are the logits), and held against the authors' reductions where ours follow them. Then
what every method owes the contract: ignored rows change nothing, a batch of ignored rows is a zero
loss, seeds stacked give each seed's own step, the chunked head gives the step computed at once,
micro-batches add up to the batch's gradients, and the options are checked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.peer_checks import M, identity_head

from labelemb import methods
from labelemb.methods.registry import search_space
from labelemb.stacking import stack_modules, unstack_into

# Rows chosen so that every branch is at work: p_y high and low (FLSD's two gammas, the credal set's
# inside and outside), logit gaps above and below a margin of 1.
LOGITS = [
    [3.0, 0.5, -1.0, 0.2],
    [0.1, 0.3, 2.5, -0.4],
    [-1.0, 2.0, 0.5, 0.0],
    [4.0, -2.0, -1.0, 0.0],
    [0.3, -0.2, 0.1, 1.2],
]
TARGETS = [0, 0, 1, 0, 3]
#: Record keys that time a run, which differ between any two runs.
TIMING = {"wall_seconds", "train_seconds", "seconds_per_epoch"}
NAMES = ["focal", "flsd53", "mbls", "logitnorm", "label_relaxation"]
#: A setting of each method in which each of its terms and branches is at work.
ACTIVE = {
    "focal": {"gamma": 2.0},
    "flsd53": {},
    "mbls": {"margin": 1.0, "alpha": 0.5},
    "logitnorm": {"tau": 0.5},
    "label_relaxation": {"alpha": 0.3},
}


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def step(head, logits=LOGITS, targets=TARGETS):
    """The method's loss and its gradient in the logits."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    out = head(z, torch.tensor(targets))
    (grad,) = torch.autograd.grad(out.loss, z)
    return out, grad.numpy()


def average(rows):
    """Mean loss and the gradient of the mean, from each row's (loss, gradient)."""
    losses, grads = zip(*rows)
    return float(np.mean(losses)), np.stack(grads) / len(rows)


# ---------------------------------------------------------------- hand computations (one row each)


def hand_focal(z, y, gamma=3.0, gamma_low=None, p_low=0.2):
    """``-(1 - p_y)^g log p_y`` and its gradient ``c (p - e_y)``, with
    ``c = (1 - p_y)^g - g p_y (1 - p_y)^(g - 1) log p_y``."""
    log_p = np_log_softmax(np.array(z))
    p = np.exp(log_p)
    g = gamma_low if gamma_low is not None and p[y] < p_low else gamma
    c = (1 - p[y]) ** g - g * p[y] * (1 - p[y]) ** (g - 1) * log_p[y]
    return -((1 - p[y]) ** g) * log_p[y], c * (p - np.eye(M)[y])


def hand_mbls(z, y, margin=10.0, alpha=0.1):
    """CE plus ``alpha`` times the class mean of ``relu(max z - z_j - margin)``; the max is differentiated."""
    z = np.array(z)
    log_p = np_log_softmax(z)
    gaps = z.max() - z - margin
    active = (gaps > 0).astype(float)
    hinge_grad = -active.copy()
    hinge_grad[z.argmax()] += active.sum()
    loss = -log_p[y] + alpha * np.maximum(gaps, 0).mean()
    return loss, np.exp(log_p) - np.eye(M)[y] + alpha / M * hinge_grad


def hand_logitnorm(z, y, tau=0.04, eps=1e-7):
    """CE of ``s = z / (tau (||z|| + eps))``; the gradient through the Jacobian of s written out."""
    z = np.array(z)
    n = np.linalg.norm(z)
    s = z / (tau * (n + eps))
    log_q = np_log_softmax(s)
    jacobian = (np.eye(M) / (n + eps) - np.outer(z, z) / (n * (n + eps) ** 2)) / tau
    return -log_q[y], jacobian.T @ (np.exp(log_q) - np.eye(M)[y])


def hand_label_relaxation(z, y, alpha=0.1):
    """0 inside the set; else the two-point KL ``(1-a) log((1-a)/p_y) + a log(a/(1-p_y))`` (what
    ``KL(r || p)`` comes to) with the gradient ``p - r``."""
    p = np.exp(np_log_softmax(np.array(z)))
    if p[y] > 1 - alpha:
        return 0.0, np.zeros(M)
    r = alpha * p / (1 - p[y])
    r[y] = 1 - alpha
    rest = alpha * math.log(alpha / (1 - p[y])) if alpha > 0 else 0.0
    return (1 - alpha) * math.log((1 - alpha) / p[y]) + rest, p - r


HAND = {
    "focal": hand_focal,
    "flsd53": lambda z, y: hand_focal(z, y, gamma=3.0, gamma_low=5.0, p_low=0.2),
    "mbls": hand_mbls,
    "logitnorm": hand_logitnorm,
    "label_relaxation": hand_label_relaxation,
}


def hand(name, logits=LOGITS, targets=TARGETS, **options):
    """The method's mean loss over the rows that are not ignored, and its gradient in every row's logits."""
    rows = [HAND[name](z, y, **options) if y != -100 else None for z, y in zip(logits, targets)]
    kept = [row for row in rows if row is not None]
    loss, grads = average(kept)
    full = np.zeros((len(logits), M))
    full[[i for i, row in enumerate(rows) if row is not None]] = grads
    return loss, full


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("focal", {}),
        ("focal", {"gamma": 1.0}),
        ("focal", {"gamma": 0.5}),
        ("focal", {"gamma": 2.0, "gamma_low": 4.0, "p_low": 0.5}),
        ("flsd53", {}),
        ("mbls", {"margin": 1.0, "alpha": 0.5}),
        ("mbls", {"margin": 3.0, "alpha": 2.0}),
        ("mbls", {}),
        ("logitnorm", {}),
        ("logitnorm", {"tau": 0.5}),
        ("label_relaxation", {}),
        ("label_relaxation", {"alpha": 0.3}),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()),
)
def test_loss_and_gradient_match_the_hand_computation(name, options):
    out, grad = step(identity_head(name, **options))
    loss, expected = hand(name, **options)
    assert out.loss.item() == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(out.logits, torch.tensor(LOGITS, dtype=torch.float64))


def test_the_rows_exercise_each_branch():
    """The hand computations above cover both sides of every switch."""
    p_y = np.exp(np_log_softmax(np.array(LOGITS)))[np.arange(len(TARGETS)), TARGETS]
    assert (p_y < 0.2).any() and (p_y >= 0.2).any()  # FLSD-53's two gammas
    assert (p_y > 0.9).any() and (p_y <= 0.7).any()  # inside and outside the credal set (alpha 0.1, 0.3)
    gaps = np.array(LOGITS).max(1, keepdims=True) - np.array(LOGITS)
    assert (gaps > 1.0).any() and ((gaps > 0) & (gaps < 1.0)).any()  # gaps on both sides of a margin of 1


def test_the_terms_are_logged():
    out, _ = step(identity_head("focal", gamma=2.0))
    log_p = np_log_softmax(np.array(LOGITS))
    ce = -np.mean(log_p[np.arange(5), TARGETS])
    assert out.terms["ce"].item() == pytest.approx(ce, rel=1e-12)
    assert out.terms["focal"].item() == pytest.approx(out.loss.item(), rel=1e-12)
    out, _ = step(identity_head("mbls", margin=1.0, alpha=0.5))
    z = np.array(LOGITS)
    hinge = np.maximum(z.max(1, keepdims=True) - z - 1.0, 0).mean(1).mean()
    assert out.terms["margin"].item() == pytest.approx(hinge, rel=1e-12)
    assert out.terms["ce"].item() == pytest.approx(ce, rel=1e-12)
    out, _ = step(identity_head("logitnorm"))
    assert out.terms["logit_norm"].item() == pytest.approx(np.linalg.norm(z, axis=1).mean(), rel=1e-12)
    out, _ = step(identity_head("label_relaxation"))
    p_y = np.exp(log_p)[np.arange(5), TARGETS]
    assert out.terms["in_set"].item() == pytest.approx(np.mean(p_y > 0.9))
    assert out.terms["kl"].item() == pytest.approx(out.loss.item(), rel=1e-12)
    assert all(not value.requires_grad for value in out.terms.values())


@pytest.mark.parametrize("name", NAMES)
def test_finite_differences_agree_with_autograd(name):
    head = identity_head(name, **ACTIVE[name])
    target = torch.tensor(TARGETS)
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: head(x, target).loss, (z,))


# ---------------------------------------------------------------- the authors' reductions


def test_focal_is_mukhoti_et_al_s_loss_averaged():
    """Their FocalLoss: ``-(1 - pt)**gamma * logpt`` with pt = exp(logpt) (not detached), summed over
    the batch; FocalLossAdaptive with gamma 3 (FLSD-53): 5 where pt < 0.2, 3 for 0.2 <= pt < 0.5 and
    pt >= 0.5, chosen from pt's value."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    logpt = F.log_softmax(z, dim=1).gather(1, target[:, None]).view(-1)
    pt = logpt.exp()
    theirs = (-1 * (1 - pt) ** 3.0 * logpt).sum() / len(TARGETS)
    torch.testing.assert_close(identity_head("focal")(z, target).loss, theirs)
    bands = torch.tensor([5.0 if value < 0.2 else 3.0 for value in pt.tolist()], dtype=torch.float64)
    theirs = (-1 * (1 - pt) ** bands * logpt).sum() / len(TARGETS)
    ours = identity_head("flsd53")(z, target).loss
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))


def test_mbls_is_liu_et_al_s_logit_margin_l1():
    """Their LogitMarginL1: CE + alpha * relu(max - z - margin).mean() over all N x m entries."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    diff = z.max(dim=1).values.unsqueeze(1).repeat(1, M) - z
    theirs = F.cross_entropy(z, target) + 0.5 * F.relu(diff - 1.0).mean()
    ours = identity_head("mbls", margin=1.0, alpha=0.5)(z, target).loss
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))


def test_logitnorm_is_wei_et_al_s_loss_and_predicts_with_the_raw_logits():
    """Their LogitNormLoss: CE(z / (||z|| + 1e-7) / t); prediction reads the raw logits."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    theirs = F.cross_entropy(z / (torch.norm(z, p=2, dim=-1, keepdim=True) + 1e-7) / 0.04, target)
    head = identity_head("logitnorm")
    out = head(z, target)
    torch.testing.assert_close(out.loss, theirs)
    torch.testing.assert_close(torch.autograd.grad(out.loss, z), torch.autograd.grad(theirs, z))
    torch.testing.assert_close(out.logits, z.detach())
    torch.testing.assert_close(head.logits(z.detach()), z.detach())
    # Only the direction is trained: the loss of 3 z is the loss of z (up to the eps).
    assert head(3 * z.detach(), target).loss.item() == pytest.approx(out.loss.item(), rel=1e-6)


def test_label_relaxation_is_lienen_and_huellermeier_s_loss():
    """Their LabelRelaxationLoss: the credal target built without gradient, KL(target || p) summed over
    classes, 0 where p_y > 1 - alpha, the mean over the batch."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    pred = z.softmax(dim=-1)
    onehot = F.one_hot(target, M).to(pred.dtype)
    with torch.no_grad():
        rest = ((1 - onehot) * pred).sum(-1, keepdim=True)
        credal = torch.where(onehot > 0.1, 1.0 - 0.3, 0.3 * pred / rest)
    divergence = F.kl_div(pred.log(), credal, reduction="none").sum(-1)
    theirs = torch.where((pred * onehot).sum(-1) > 0.7, torch.zeros_like(divergence), divergence).mean()
    ours = identity_head("label_relaxation", alpha=0.3)(z, target).loss
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))


# ---------------------------------------------------------------- limits and numerics


@pytest.mark.parametrize(
    ("name", "options"),
    [("focal", {"gamma": 0.0}), ("mbls", {"alpha": 0.0}), ("label_relaxation", {"alpha": 0.0})],
)
def test_switched_off_is_plain_cross_entropy(name, options):
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, -100, 2, 3])
    ours = identity_head(name, **options)(z, target).loss
    expected = identity_head("onehot")(z, target).loss
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(expected, z))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "options"), [("focal", {"gamma": 0.5}), ("focal", {}), ("logitnorm", {})])
def test_extreme_rows_keep_the_loss_and_gradient_finite(name, options, dtype):
    """p_y rounding to 1 with a gamma below 1 (whose weight has an infinite slope at 1), and a row
    of zero logits for logitnorm (no direction)."""
    head = methods.build(name, in_features=M, num_classes=M, **options).to(dtype)
    with torch.no_grad():
        head.output.weight.copy_(torch.eye(M))
        head.output.bias.zero_()
    z = torch.tensor([[200.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    z.requires_grad_()
    out = head(z, torch.tensor([0, 1, 2]))
    (grad,) = torch.autograd.grad(out.loss, z)
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all()
    chunked = methods.build(name, in_features=M, num_classes=M, chunk_size=1, **options).to(dtype)
    chunked.load_state_dict(head.state_dict())
    h = z.detach().clone().requires_grad_()
    loss = chunked(h, torch.tensor([0, 1, 2])).loss
    (chunk_grad,) = torch.autograd.grad(loss, h)
    assert torch.isfinite(loss) and torch.isfinite(chunk_grad).all()


# ---------------------------------------------------------------- ignored rows


@pytest.mark.parametrize("name", NAMES)
def test_ignored_rows_leave_loss_terms_and_gradients_untouched(name):
    head = identity_head(name, **ACTIVE[name])
    base, _ = step(head)
    z = torch.tensor([*LOGITS, [5.0, -4.0, 0.0, 1.0], [0.3, 0.3, 0.3, 0.3]], dtype=torch.float64)
    z.requires_grad_()
    padded = head(z, torch.tensor([*TARGETS, -100, -100]))
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-12)
    assert padded.terms.keys() == base.terms.keys()
    for key in base.terms:
        assert padded.terms[key].item() == pytest.approx(base.terms[key].item(), rel=1e-12), key
    padded.loss.backward()
    assert torch.all(z.grad[5:] == 0) and z.grad[:5].abs().sum() > 0
    assert padded.logits.shape == (7, M)
    # An ignored row in the middle, and a custom ignore_index, against the hand computation.
    targets = [0, -100, 1, 0, 3]
    out, grad = step(head, targets=targets)
    loss, expected = hand(name, targets=targets, **ACTIVE[name])
    assert out.loss.item() == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
    custom = identity_head(name, ignore_index=7, **ACTIVE[name])
    out, grad = step(custom, targets=[0, 7, 1, 0, 3])
    assert out.loss.item() == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_ignored_rows_is_a_zero_loss_with_zero_gradients(name):
    head = methods.build(name, in_features=3, num_classes=M, **ACTIVE[name])
    features = torch.randn(6, 3, requires_grad=True)
    out = head(features, torch.full((6,), -100))
    assert out.loss.item() == 0.0
    assert all(value.item() == 0.0 for value in out.terms.values())
    out.loss.backward()
    assert torch.all(features.grad == 0)
    assert all(not p.grad.any() for p in head.parameters())
    empty = head(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert empty.loss.item() == 0.0 and empty.logits.shape == (0, M)


# ---------------------------------------------------------------- stacked seeds


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
@pytest.mark.parametrize("name", NAMES)
def test_stacked_seeds_give_each_seeds_loss_terms_and_gradients(name, ignored):
    """One module whose tensors are the seeds' stacked = each seed's own method on its rows."""
    torch.manual_seed(0)
    num_seeds, batch, width, m = 3, 20, 16, 5
    heads = [methods.build(name, in_features=width, num_classes=m, **ACTIVE[name]) for _ in range(num_seeds)]
    for head in heads:  # confident enough that every term and branch is at work
        head.output.weight.data.mul_(8.0)
    stacked = stack_modules(heads)
    assert stacked.stackable
    features = torch.randn(num_seeds, batch, width, requires_grad=True)
    labels = torch.randint(0, m, (num_seeds, batch))
    if ignored:
        labels[:, ::4] = -100
    out = stacked(features, labels)
    assert out.loss.shape == (num_seeds,)
    out.loss.sum().backward()
    stacked_grads = dict(stacked.named_parameters())
    for s, head in enumerate(heads):
        rows = features[s].detach().requires_grad_()
        own = head(rows, labels[s])
        own.loss.backward()
        torch.testing.assert_close(out.loss[s], own.loss.detach(), rtol=1e-5, atol=1e-6)
        assert out.terms.keys() == own.terms.keys()
        for key, value in own.terms.items():
            torch.testing.assert_close(out.terms[key][s], value, rtol=1e-5, atol=1e-6, msg=key)
        torch.testing.assert_close(out.logits[s], own.logits.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(features.grad[s], rows.grad, rtol=1e-4, atol=1e-6)
        for key, param in head.named_parameters():
            torch.testing.assert_close(stacked_grads[key].grad[s], param.grad, rtol=1e-4, atol=1e-6)
    copies = [methods.build(name, in_features=width, num_classes=m, **ACTIVE[name]) for _ in range(num_seeds)]
    unstack_into(stacked, copies)
    for copy, head in zip(copies, heads):
        for key, value in head.state_dict().items():
            torch.testing.assert_close(copy.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", NAMES)
def test_seeds_trained_batched_give_the_numbers_of_sequential_runs(name, small_config, digits, tmp_path):
    """One epoch on the digits, two seeds side by side and one after the other: the same training
    losses, errors within one example and the same weights within rounding."""
    import json

    from helpers.batched_checks import train_batched

    from labelemb.training import train

    options = [f"method.{key}={value}" for key, value in ACTIVE[name].items()]
    configs = {
        way: [
            small_config(f"method.name={name}", *options, "train.epochs=1", output_dir=tmp_path / way, seed=s)
            for s in (0, 1)
        ]
        for way in ("batched", "sequential")
    }
    summaries = train_batched(configs["batched"], dataset=digits)
    assert [s["batched_seeds"] for s in summaries] == [2, 2]
    for config in configs["sequential"]:
        train(config, dataset=digits)
    one_example = 100.0 / len(digits.test) + 1e-9
    for got, want in zip(*(c for c in configs.values())):
        records = [
            [json.loads(line) for line in (c.run_dir() / "metrics.jsonl").read_text().splitlines()]
            for c in (got, want)
        ]
        assert len(records[0]) == len(records[1])
        for a, b in zip(*records):
            assert [key for key in b if key.startswith("train_") and key not in TIMING], b
            for key in b:
                if key.startswith("train_") and key not in TIMING:
                    assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-6), (key, a[key], b[key])
                elif key in ("dev_error", "test_error"):
                    assert abs(a[key] - b[key]) <= one_example, (key, a[key], b[key])
        weights = [torch.load(c.run_dir() / "model.pt", weights_only=True) for c in (got, want)]
        for key, value in weights[1].items():
            torch.testing.assert_close(weights[0][key], value, rtol=1e-4, atol=1e-5, msg=key)


# ---------------------------------------------------------------- chunked head


@pytest.mark.parametrize("name", NAMES)
def test_the_chunked_head_gives_the_step_computed_at_once(name):
    """Loss, every logged term and every gradient, with ignored rows, in chunks of 7 of 41 rows."""
    d, m, n = 8, 12, 41
    ignored = [3, 10, 11, 30]
    torch.manual_seed(0)
    whole = methods.build(name, in_features=d, num_classes=m, chunk_size=10**6, **ACTIVE[name])
    with torch.no_grad():
        whole.output.weight.mul_(4.0)  # confident rows: hinges, sets and both gammas take part
    chunked = methods.build(name, in_features=d, num_classes=m, chunk_size=7, **ACTIVE[name])
    chunked.load_state_dict(whole.state_dict())
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(n, d, generator=generator)
    target = torch.randint(0, m, (n,), generator=generator)
    with torch.no_grad():  # a third of the rows labelled as predicted: some of them confidently right
        target[::3] = whole.logits(features[::3]).argmax(-1)
    target[ignored] = -100
    results = []
    for method in (chunked, whole):
        rows = features.clone().requires_grad_()
        out = method(rows, target)
        grads = torch.autograd.grad(out.loss, [rows, *method.parameters()])
        results.append((out, grads))
    (ours, our_grads), (reference, reference_grads) = results
    assert ours.logits is None and reference.logits.shape == (n, m)
    torch.testing.assert_close(ours.loss, reference.loss, rtol=1e-5, atol=1e-6)
    assert ours.terms.keys() == reference.terms.keys()
    for key in reference.terms:
        torch.testing.assert_close(ours.terms[key], reference.terms[key], rtol=1e-5, atol=1e-6, msg=key)
    for got, want in zip(our_grads, reference_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert our_grads[0][ignored].abs().sum() == 0
    if name == "label_relaxation":
        assert 0.0 < reference.terms["in_set"].item() < 1.0  # both sides of the set's edge
    if name == "flsd53":
        p_y = F.softmax(reference.logits, -1)[target != -100].gather(1, target[target != -100][:, None])
        assert (p_y < 0.2).any() and (p_y >= 0.2).any()


# ---------------------------------------------------------------- gradient accumulation


@pytest.mark.parametrize("name", NAMES)
def test_micro_batches_add_up_to_the_whole_batchs_gradients(name):
    """micro_batch_loss over 4 micro-batches (ignored rows unevenly spread) gives every gradient of
    the batch at once, and one micro-batch that is the whole step gives the method's own loss."""
    torch.manual_seed(0)
    head = methods.build(name, in_features=6, num_classes=5, **ACTIVE[name]).double()
    head.output.weight.data.mul_(6.0)
    target = torch.randint(0, 5, (32,))
    target[:5] = -100  # the first micro-batch counts 3 rows, the others 8
    features = torch.randn(32, 6, dtype=torch.float64)
    items = (target != -100).sum()

    def gradients(parts: int) -> dict[str, torch.Tensor]:
        head.zero_grad(set_to_none=True)
        rows = features.clone().requires_grad_()
        for chunk, labels in zip(rows.chunk(parts), target.chunk(parts)):
            head.micro_batch_loss(chunk, labels, items).loss.backward()
        return {"features": rows.grad, **{n: p.grad.clone() for n, p in head.named_parameters()}}

    whole, parts = gradients(1), gradients(4)
    for key, grad in whole.items():
        assert grad.abs().max() > 0, key
        torch.testing.assert_close(parts[key], grad, rtol=0, atol=1e-12, msg=key)
    torch.testing.assert_close(
        head.micro_batch_loss(features, target, items).loss, head(features, target).loss
    )
    assert not head.accumulation_caveat


# ---------------------------------------------------------------- registry and options


def test_the_methods_are_registered_with_their_presets_traits_and_spaces():
    assert set(NAMES) <= set(methods.available())
    assert methods.method_class("flsd53") is methods.method_class("focal")
    assert methods.options("flsd53") == {**methods.options("focal"), "gamma_low": 5.0, "gamma": 3.0}
    assert methods.preset_options("flsd53") == {"gamma": 3.0, "gamma_low": 5.0, "p_low": 0.2}
    assert methods.options("focal")["gamma"] == 3.0 and methods.options("focal")["gamma_low"] is None
    assert methods.options("mbls")["margin"] == 10.0 and methods.options("mbls")["alpha"] == 0.1
    assert methods.options("logitnorm")["tau"] == 0.04
    assert methods.options("label_relaxation")["alpha"] == 0.1
    for name in NAMES:
        cls = methods.method_class(name)
        assert cls.stackable and cls.chunkable and "chunk_size" in methods.options(name)
        assert name in methods.serving("token") and name in methods.serving("class")
        # every row kind but tag sets, which focal's sigmoid form serves and the others refuse
        assert set(cls.cannot_serve) == ({"tags"} - cls.serves)
    assert set(search_space("focal")) == {"gamma"}
    assert search_space("flsd53") == {}  # its gammas are fixed by the preset
    assert set(search_space("mbls")) == {"margin", "alpha"}
    assert set(search_space("logitnorm")) == {"tau"}
    assert set(search_space("label_relaxation")) == {"alpha"}


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("focal", {"gamma": -1.0}, "gamma must be"),
        ("focal", {"gamma": math.inf}, "gamma must be"),
        ("focal", {"gamma_low": -0.5}, "gamma_low must be"),
        ("focal", {"p_low": 0.0}, "p_low must lie in"),
        ("focal", {"p_low": 1.5}, "p_low must lie in"),
        ("flsd53", {"gamma": math.nan}, "gamma must be"),
        ("mbls", {"margin": -1.0}, "margin must be"),
        ("mbls", {"alpha": -0.1}, "alpha must be"),
        ("mbls", {"alpha": math.nan}, "alpha must be"),
        ("logitnorm", {"tau": 0.0}, "tau must be"),
        ("logitnorm", {"tau": -0.04}, "tau must be"),
        ("label_relaxation", {"alpha": 1.0}, r"alpha must lie in \[0, 1\)"),
        ("label_relaxation", {"alpha": -0.1}, r"alpha must lie in \[0, 1\)"),
        ("focal", {"gama": 2.0}, r"no option\(s\) gama"),
        ("focal", {"chunk_size": 0}, "chunk_size must be"),
    ],
)
def test_bad_options_are_refused_with_a_clear_error(name, options, match):
    with pytest.raises(ValueError, match=match):
        methods.build(name, in_features=3, num_classes=M, **options)
