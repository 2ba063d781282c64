"""zipf_ls, lspp and lcm (issue 47) against hand computations in NumPy (float64): each loss and its
gradient, what is and is not differentiated, ignored rows, stacked seeds, gradient accumulation,
and a short training run of each through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.batched_checks import train_batched
from safetensors.torch import load_file
from scipy.stats import rankdata

from labelemb import methods
from labelemb.cli import main
from labelemb.methods.lcm import LabelConfusionModel
from labelemb.methods.lspp import LabelSmoothingPlusPlus
from labelemb.methods.zipf_ls import ZipfLabelSmoothing, min_ranks, zipf_targets
from labelemb.stacking import stack_modules
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["zipf_ls", "lspp", "lcm"]
M = 4
#: Logits of five rows (the features of an identity output layer), the second with tied scores.
LOGITS = [
    [2.0, 0.5, -1.0, 0.3],
    [0.1, 1.0, 1.0, -0.5],
    [-0.3, 0.2, 0.9, 1.4],
    [1.2, -2.0, 0.0, 0.7],
    [0.0, 0.4, -0.6, 0.8],
]
TARGETS = [0, 2, 1, 3, 0]


def identity_head(cls, **options):
    """A float64 method on m-wide features whose output layer is the identity: features are the logits."""
    torch.manual_seed(0)
    head = cls(M, M, **options).double()
    with torch.no_grad():
        head.output.weight.copy_(torch.eye(M))
        head.output.bias.zero_()
    return head


def step(head, logits=LOGITS, targets=TARGETS):
    """A training step on the given logits; returns the output and the features' (= logits') gradient."""
    h = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    head.zero_grad()
    out = head(h, torch.tensor(targets))
    out.loss.backward()
    return out, h.grad


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------ zipf_ls


def hand_zipf(logits, targets, weight=0.1, power=1.0):
    """The loss, its terms and its gradient in the logits, row by row, with the authors' own ranking
    (scipy's rankdata, method "min", over all m classes; the label's entry then dropped)."""
    z, n = np.array(logits), len(targets)
    ce = kl = 0.0
    grad = np.zeros_like(z)
    for i, y in enumerate(targets):
        p = np_softmax(z[i])
        rank = rankdata(-z[i], method="min")
        others = [k for k in range(M) if k != y]
        t = rank[others] ** -power
        t = t / t.sum()
        q = np_softmax(z[i][others])
        ce += -np.log(p[y])
        kl += (t * (np.log(t) - np.log(q))).sum()
        g = p.copy()
        g[y] -= 1.0
        g[others] += weight * (q - t)  # d KL(t || q) / d z_k = q_k - t_k off the label, 0 at it
        grad[i] = g / n
    return ce / n + weight * kl / n, ce / n, kl / n, grad


@pytest.mark.parametrize("weight, power", [(0.1, 1.0), (2.0, 1.7)])
def test_zipf_loss_and_gradient_are_the_hand_computation(weight, power):
    head = identity_head(ZipfLabelSmoothing, weight=weight, power=power)
    out, grad = step(head)
    loss, ce, kl, want = hand_zipf(LOGITS, TARGETS, weight, power)
    torch.testing.assert_close(out.loss.item(), loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["ce"].item(), ce, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["zipf"].item(), kl, rtol=1e-12, atol=1e-12)
    # With the target a constant: a gradient through the ranks (there is none) would change this.
    torch.testing.assert_close(grad, torch.tensor(want), rtol=1e-10, atol=1e-12)


def test_zipf_ranks_are_scipys_min_ranks_with_ties_and_the_target_has_no_gradient():
    z = torch.tensor(
        [[0.1, 1.0, 1.0, -0.5], [3.0, 3.0, 3.0, 3.0], [0.0, -1.0, 2.0, 1.0]], dtype=torch.float64
    )
    want = np.stack([rankdata(-row, method="min") for row in z.numpy()])
    torch.testing.assert_close(min_ranks(z), torch.tensor(want, dtype=torch.float64))
    stacked = torch.stack([z, z.flip(0)])  # a leading seed dimension
    torch.testing.assert_close(min_ranks(stacked)[1], min_ranks(z.flip(0)))
    logits = z.clone().requires_grad_()
    target = zipf_targets(logits, torch.tensor([1, 0, 2]), 1.0)
    assert target.grad_fn is None and not target.requires_grad
    # Row 0, label 1: ranks 3, 1, 1 (tied with the label: both rank 1), 4 -> 1/3, 0, 1, 1/4 over 19/12.
    want_row = torch.tensor([4 / 19, 0.0, 12 / 19, 3 / 19], dtype=torch.float64)
    torch.testing.assert_close(target[0], want_row)
    assert torch.allclose(target.sum(-1), torch.ones(3, dtype=torch.float64))
    assert (target[torch.arange(3), torch.tensor([1, 0, 2])] == 0).all()


def test_zipf_with_two_classes_is_cross_entropy():
    head = methods.build("zipf_ls", in_features=3, num_classes=2, weight=5.0).double()
    h, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0])
    out = head(h, y)
    torch.testing.assert_close(out.terms["zipf"], torch.zeros((), dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(head.logits(h), y))


# ---------------------------------------------------------------------------------------- lspp

C_LOGITS = [
    [0.0, 0.3, -0.2, 1.0],
    [0.5, 0.0, 0.1, -0.4],
    [-1.0, 0.2, 0.0, 0.6],
    [0.3, 0.3, -0.7, 0.0],
]


def lspp_head(alpha=0.1):
    head = identity_head(LabelSmoothingPlusPlus, alpha=alpha)
    with torch.no_grad():
        head.c_matrix.copy_(torch.tensor(C_LOGITS, dtype=torch.float64))
        head.c_matrix[0, 0] = 7.0  # a diagonal entry is never read
    return head


def hand_c(y):
    """Class y's learnt distribution: the softmax of row y over its non-target entries, 0 at y."""
    others = [k for k in range(M) if k != y]
    c = np.zeros(M)
    c[others] = np_softmax(np.array(C_LOGITS[y])[others])
    return c


def hand_lspp(logits, targets, alpha):
    """1/2 H(t, p) + 1/2 H(p, t), t = (1 - alpha) onehot(y) + alpha C[y]; the logits' gradient with
    t fixed, 1/2 (p - t), and C's logits' gradient with p fixed, 1/2 (c (1 - p_y) - p) off the label."""
    z, n = np.array(logits), len(targets)
    forward = reverse = 0.0
    grad_z, grad_c = np.zeros_like(z), np.zeros((M, M))
    for i, y in enumerate(targets):
        p, c = np_softmax(z[i]), hand_c(y)
        t = alpha * c
        t[y] = 1.0 - alpha
        forward += -(t * np.log(p)).sum()
        reverse += -(p * np.log(t)).sum()
        grad_z[i] = 0.5 * (p - t) / n
        others = [k for k in range(M) if k != y]
        grad_c[y, others] += 0.5 * (c[others] * (1.0 - p[y]) - p[others]) / n
    return 0.5 * forward / n + 0.5 * reverse / n, forward / n, reverse / n, grad_z, grad_c


@pytest.mark.parametrize("alpha", [0.1, 0.6])
def test_lspp_loss_and_gradients_are_the_hand_computation(alpha):
    head = lspp_head(alpha)
    out, grad = step(head)
    loss, forward, reverse, grad_z, grad_c = hand_lspp(LOGITS, TARGETS, alpha)
    torch.testing.assert_close(out.loss.item(), loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["ce"].item(), forward, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["rce"].item(), reverse, rtol=1e-12, atol=1e-12)
    # The network learns from the forward CE alone (t detached); C from the reverse CE alone (p detached).
    torch.testing.assert_close(grad, torch.tensor(grad_z), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(head.c_matrix.grad, torch.tensor(grad_c), rtol=1e-10, atol=1e-12)
    assert (head.c_matrix.grad.diagonal() == 0).all()
    step(head, targets=[0, 2, 2, 3, 0])
    assert not head.c_matrix.grad[1].any()  # no example of class 1: its row learns nothing


def test_lspp_is_the_authors_released_loss_up_to_their_log_epsilon():
    """Their lspp.py: t from a K x (K - 1) parameter around a zero diagonal, both CEs with log(x + 1e-6)."""
    head = lspp_head(0.1)
    out, _ = step(head)
    z = torch.tensor(LOGITS, dtype=torch.float64)
    p = torch.softmax(z, 1)
    off = ~torch.eye(M, dtype=torch.bool)
    theirs_param = torch.tensor(C_LOGITS, dtype=torch.float64)[off].reshape(M, M - 1)
    c = torch.zeros(M, M, dtype=torch.float64)
    c[off] = torch.softmax(theirs_param, 1).reshape(-1)
    y = torch.tensor(TARGETS)
    t = 0.9 * torch.nn.functional.one_hot(y, M) + 0.1 * c[y]
    theirs = (-(p * (t + 1e-6).log()).sum(1).mean() - (t * (p + 1e-6).log()).sum(1).mean()) / 2
    torch.testing.assert_close(out.loss, theirs, rtol=1e-4, atol=0)


def test_lspp_starts_as_label_smoothing_over_the_other_classes_and_saves_c():
    head = methods.build("lspp", in_features=3, num_classes=5, alpha=0.2)
    c = head.label_representation()
    want = (torch.ones(5, 5) - torch.eye(5)) / 4
    torch.testing.assert_close(c, want)
    tensors = head.artifacts()
    torch.testing.assert_close(tensors["representation"], want)
    torch.testing.assert_close(tensors["targets"], 0.8 * torch.eye(5) + 0.2 * want)
    with torch.no_grad():
        head.c_matrix.normal_()
    c = head.label_representation()
    assert (c.diagonal() == 0).all() and torch.allclose(c.sum(1), torch.ones(5))


# ----------------------------------------------------------------------------------------- lcm


def lcm_head(alpha=4.0, embedding_dim=3):
    head = identity_head(LabelConfusionModel, alpha=alpha, embedding_dim=embedding_dim)
    with torch.no_grad():  # away from the start, so that the LCD is far from uniform
        for param in (head.label_embedding, *head.label_encoder.parameters(), *head.confusion.parameters()):
            param.normal_(0.0, 0.8)
    return head


def hand_lcm(head, logits, targets):
    """KL(s || p), s = softmax(alpha onehot + softmax(W_c (V h) + b_c)), V = tanh(E A^T + a); its gradient
    in the logits (p - s) / n, and in the confusion layer's bias, through a = alpha onehot + c."""
    E = head.label_embedding.detach().numpy()
    A, a = head.label_encoder.weight.detach().numpy(), head.label_encoder.bias.detach().numpy()
    Wc, bc = head.confusion.weight.detach().numpy(), head.confusion.bias.detach().numpy()
    z, n = np.array(logits), len(targets)
    V = np.tanh(E @ A.T + a)
    total, grad_z, grad_bc = 0.0, np.zeros_like(z), np.zeros(M)
    for i, y in enumerate(targets):
        p = np_softmax(z[i])
        c = np_softmax(Wc @ (V @ z[i]) + bc)  # the features are the logits here (identity head)
        onehot = np.eye(M)[y]
        s = np_softmax(head.alpha * onehot + c)
        kl = (s * (np.log(s) - np.log(p))).sum()
        total += kl
        grad_z[i] = (p - s) / n  # the predictor's share of the features' gradient
        g_a = s * (np.log(s) - np.log(p) - kl)  # d KL / d a, s = softmax(a)
        grad_bc += c * (g_a - (c * g_a).sum()) / n  # through c = softmax(u)
    return total / n, grad_z, grad_bc, V


def test_lcm_loss_and_gradient_are_the_hand_computation():
    head = lcm_head()
    out, grad_h = step(head)
    loss, grad_z, grad_bc, V = hand_lcm(head, LOGITS, TARGETS)
    torch.testing.assert_close(out.loss.item(), loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.terms["kl"].item(), loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(head.label_representation(), torch.tensor(V))
    # The output layer learns (p - s) h^T / n; s is not detached but does not depend on it.
    torch.testing.assert_close(head.output.weight.grad, torch.tensor(grad_z.T @ np.array(LOGITS)))
    torch.testing.assert_close(head.confusion.bias.grad, torch.tensor(grad_bc), rtol=1e-10, atol=1e-12)
    # The features learn through the predictor and through the label similarity too (nothing detached).
    assert not torch.allclose(grad_h, torch.tensor(grad_z) @ head.output.weight.detach(), atol=1e-6)


def test_lcm_every_label_encoder_parameter_learns_by_the_kl():
    """Finite differences of the loss in every parameter and in the features (gradcheck, float64)."""
    head = lcm_head(alpha=2.5)
    names = [name for name, _ in head.named_parameters()]
    assert set(names) == {
        "output.weight",
        "output.bias",
        "label_embedding",
        "label_encoder.weight",
        "label_encoder.bias",
        "confusion.weight",
        "confusion.bias",
    }
    params = dict(head.named_parameters())
    h = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(TARGETS)

    def loss(h, *values):
        return torch.func.functional_call(head, dict(zip(names, values)), (h, y)).loss

    assert torch.autograd.gradcheck(loss, (h, *(params[name] for name in names)))
    out, _ = step(head)
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_lcm_soft_target_puts_most_mass_on_the_gold_class_at_alpha_4():
    """With ten classes, the SLD's gold mass lies between e^4 / (e^4 + 9 e) and e^5 / (e^5 + 9)."""
    torch.manual_seed(0)
    head = methods.build("lcm", in_features=6, num_classes=10)
    h, y = torch.randn(32, 6), torch.randint(0, 10, (32,))
    logits, confusion = head.head_outputs(h)
    s = torch.softmax(4.0 * torch.nn.functional.one_hot(y, 10) + torch.softmax(confusion, -1), -1)
    gold = s[torch.arange(32), y]
    assert (gold > np.exp(4) / (np.exp(4) + 9 * np.e)).all() and (gold < np.exp(5) / (np.exp(5) + 9)).all()


# ---------------------------------------------------------------------------------- all three


def built(name, in_features=5, num_classes=M, seed=0, **options):
    torch.manual_seed(seed)
    head = methods.build(name, in_features=in_features, num_classes=num_classes, **options).double()
    with torch.no_grad():  # away from the start: every learnt table and layer at work
        for param in head.parameters():
            param.add_(0.5 * torch.randn_like(param))
    return head


def grads(head, features, target, num_items=None):
    """The step's loss and every gradient (the features' under the key 'features')."""
    h = features.clone().requires_grad_()
    head.zero_grad()
    out = head(h, target) if num_items is None else head.micro_batch_loss(h, target, num_items)
    out.loss.backward()
    got = {name: p.grad.clone() for name, p in head.named_parameters()}
    got["features"] = h.grad
    return out, got


def batch(n=12, d=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, M, (n,), generator=g)


@pytest.mark.parametrize("name", NAMES)
def test_ignored_rows_count_for_nothing(name):
    head = built(name)
    features, target = batch()
    ignored = target.clone()
    ignored[[1, 4, 5, 9]] = -100
    keep = ignored != -100
    out, got = grads(head, features, ignored)
    want_out, want = grads(head, features[keep], target[keep])
    torch.testing.assert_close(out.loss, want_out.loss)
    for key, value in want_out.terms.items():
        torch.testing.assert_close(out.terms[key], value)
    for key, value in want.items():
        torch.testing.assert_close(got[key][keep] if key == "features" else got[key], value, msg=key)
    assert not got["features"][~keep].any()


@pytest.mark.parametrize("name", NAMES)
def test_all_rows_ignored_gives_a_zero_loss_and_no_gradient(name):
    head = built(name)
    features, _ = batch()
    out, got = grads(head, features, torch.full((12,), -100))
    assert out.loss.item() == 0.0 and out.logits.shape == (12, M)
    assert all(not value.any() for value in got.values())
    out, got = grads(head, features[:0], torch.zeros(0, dtype=torch.long))
    assert out.loss.item() == 0.0 and out.logits.shape == (0, M)


@pytest.mark.parametrize("name", NAMES)
def test_a_row_that_is_not_finite_reaches_no_parameter(name):
    head = built(name)
    features, target = batch()
    bad = features.clone()
    bad[3, 0] = float("nan")
    keep = torch.ones(12, dtype=torch.bool)
    keep[3] = False
    out, got = grads(head, bad, target)
    assert torch.isnan(out.loss)
    _, want = grads(head, features[keep], target[keep])
    for key, value in want.items():
        if key != "features":
            torch.testing.assert_close(got[key], value, msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_stacked_seeds_give_each_seeds_loss_terms_and_gradients(name):
    heads = [built(name, seed=s).float() for s in range(3)]
    assert type(heads[0]).stackable
    stacked = stack_modules(heads)
    torch.manual_seed(5)
    for ignored in (False, True):
        features = torch.randn(3, 16, 5, requires_grad=True)
        labels = torch.randint(0, M, (3, 16))
        if ignored:
            labels[:, ::3] = -100
        for param in stacked.parameters():
            param.grad = None
        out = stacked(features, labels)
        assert out.loss.shape == (3,)
        out.loss.sum().backward()
        for s, head in enumerate(heads):
            own, want = grads(head, features[s].detach(), labels[s])
            where = f"{name} seed {s} ignored={ignored}"
            torch.testing.assert_close(out.loss[s], own.loss.detach(), rtol=1e-5, atol=1e-6, msg=where)
            for key, value in own.terms.items():
                torch.testing.assert_close(out.terms[key][s], value, rtol=1e-5, atol=1e-6, msg=where)
            torch.testing.assert_close(out.logits[s], own.logits.detach(), rtol=1e-5, atol=1e-5, msg=where)
            torch.testing.assert_close(features.grad[s], want["features"], rtol=1e-4, atol=1e-6, msg=where)
            for key, param in stacked.named_parameters():
                torch.testing.assert_close(
                    param.grad[s], want[key], rtol=1e-4, atol=1e-6, msg=f"{where} {key}"
                )


@pytest.mark.parametrize("name", NAMES)
def test_seeds_trained_batched_end_where_each_seed_trained_alone_ends(name, small_config, digits, tmp_path):
    """Two epochs of the digits MLP, seeds 0 and 1 side by side and one after another: the same
    weights (the method's learnt tables too), label representation and test error."""
    overrides = (f"method.name={name}",)
    batched = [small_config(*overrides, output_dir=tmp_path / "batched", seed=s) for s in (0, 1)]
    alone = [small_config(*overrides, output_dir=tmp_path / "alone", seed=s) for s in (0, 1)]
    summaries = train_batched(batched, dataset=digits)
    assert [s["batched_seeds"] for s in summaries] == [2, 2]
    for config in alone:
        train(config, dataset=digits)
    for got_config, want_config in zip(batched, alone):
        got, want = got_config.run_dir(), want_config.run_dir()
        got_weights = torch.load(got / "model.pt", map_location="cpu", weights_only=True)
        want_weights = torch.load(want / "model.pt", map_location="cpu", weights_only=True)
        assert got_weights.keys() == want_weights.keys()
        assert any(key.startswith("method.") and "output" not in key for key in want_weights) == (
            name != "zipf_ls"
        )
        for key, value in want_weights.items():
            torch.testing.assert_close(got_weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
        got_tensors = load_file(str(got / "label_representation.safetensors"))
        want_tensors = load_file(str(want / "label_representation.safetensors"))
        for key, value in want_tensors.items():
            torch.testing.assert_close(got_tensors[key], value, rtol=1e-4, atol=1e-5, msg=key)
        got_error = json.loads((got / "summary.json").read_text())["final_test_error"]
        want_error = json.loads((want / "summary.json").read_text())["final_test_error"]
        assert abs(got_error - want_error) <= 100 / len(digits.test) + 1e-9  # one test image at most


@pytest.mark.parametrize("name", NAMES)
def test_micro_batches_accumulate_to_the_whole_batchs_gradients(name):
    """Four micro-batches of unequal counted rows, each over the step's count: the whole batch's step."""
    head = built(name)
    features, target = batch(n=16)
    target[[2, 3, 11]] = -100
    whole, want = grads(head, features, target)
    num_items = float((target != -100).sum())
    total = {key: torch.zeros_like(value) for key, value in want.items()}
    loss = 0.0
    for part in (slice(0, 3), slice(3, 4), slice(4, 11), slice(11, 16)):
        out, got = grads(head, features[part], target[part], num_items)
        loss += out.loss.item()
        for key, value in got.items():
            if key == "features":
                total[key][part] += value
            else:
                total[key] += value
    torch.testing.assert_close(loss, whole.loss.item(), rtol=1e-12, atol=1e-12)
    for key, value in want.items():
        torch.testing.assert_close(total[key], value, rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize(
    "name, options, says",
    [
        ("zipf_ls", {"weight": -0.1}, "weight"),
        ("zipf_ls", {"power": 0.0}, "power"),
        ("lspp", {"alpha": 0.0}, "strictly between 0 and 1"),
        ("lspp", {"alpha": 1.0}, "strictly between 0 and 1"),
        ("lcm", {"alpha": 0.0}, "alpha"),
        ("lcm", {"embedding_dim": 0}, "embedding_dim"),
    ],
)
def test_invalid_options_are_refused(name, options, says):
    with pytest.raises(ValueError, match=says):
        methods.build(name, in_features=3, num_classes=4, **options)


def test_which_rows_each_serves():
    assert methods.why_not_serving("zipf_ls", "token") is None
    assert "V x V" in methods.why_not_serving("lspp", "token")
    assert "V x V" in methods.why_not_serving("lcm", "token")
    for name in NAMES:
        assert methods.why_not_serving(name, "class") is None


@pytest.mark.parametrize(
    "name, learned, shape",
    [("zipf_ls", False, (10, 10)), ("lspp", True, (10, 10)), ("lcm", True, (10, 16))],
)
def test_trains_on_digits_from_the_command_line_and_saves_a_representation(
    name, learned, shape, tmp_path, capsys
):
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--method",
            name,
            "--seed",
            "0",
            "--output-dir",
            str(out),
            "--no-progress",
            "experiment=soft",
            "model.hidden=[16]",
            "train.epochs=2",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    run = out / "soft" / name / "seed0"
    summary = (run / "summary.json").read_text()
    assert ('"representation_source": "learned"' in summary) == learned
    tensors = load_file(str(run / "label_representation.safetensors"))
    assert tuple(tensors["representation"].shape) == shape
    assert torch.isfinite(tensors["representation"]).all()
    if name == "lspp":
        assert tuple(tensors["targets"].shape) == (10, 10)
