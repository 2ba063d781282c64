"""Label smoothing, confidence penalty and Tf-KD_reg against hand computations in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelemb.methods.base import LabelRangeError
from labelemb.methods.confidence_penalty import ConfidencePenalty
from labelemb.methods.label_smoothing import LabelSmoothing
from labelemb.methods.onehot import OneHot
from labelemb.methods.tfkd_reg import TfKDReg

M, D = 3, 2
WEIGHT = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]
BIAS = [0.1, 0.0, -0.1]
FEATURES = [[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0]]
TARGETS = [0, 1, 2, 1]
METHODS = [LabelSmoothing, ConfidencePenalty, TfKDReg]


def make(cls, **options):
    """A method whose output layer holds known numbers."""
    head = cls(D, M, **options)
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(WEIGHT))
        head.output.bias.copy_(torch.tensor(BIAS))
    return head


def identity_head(cls, **options):
    """A method on m-wide features whose output layer is the identity: features are the logits."""
    head = cls(M, M, **options)
    with torch.no_grad():
        head.output.weight.copy_(torch.eye(M))
        head.output.bias.zero_()
    return head


def np_logits(features) -> np.ndarray:
    return np.array(features) @ np.array(WEIGHT).T + np.array(BIAS)


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kept(features, targets, ignore=-100):
    pairs = [(h, y) for h, y in zip(features, targets) if y != ignore]
    return [h for h, _ in pairs], [y for _, y in pairs]


def hand_label_smoothing(features, targets, epsilon=0.1):
    features, targets = kept(features, targets)
    total = 0.0
    for log_p, y in zip(np_log_softmax(np_logits(features)), targets):
        soft = np.full(M, epsilon / M)
        soft[y] += 1 - epsilon
        total += -(soft * log_p).sum()
    return total / len(targets)


def hand_confidence_penalty(features, targets, beta=0.1):
    features, targets = kept(features, targets)
    total = 0.0
    for log_p, y in zip(np_log_softmax(np_logits(features)), targets):
        total += -log_p[y] - beta * -(np.exp(log_p) * log_p).sum()
    return total / len(targets)


def teacher(y, temperature=20.0, correct_prob=0.99):
    q = np.full(M, (1 - correct_prob) / (M - 1))
    q[y] = correct_prob
    return np.exp(np_log_softmax(q / temperature))


def hand_tfkd(features, targets, temperature=20.0, alpha=0.1, multiplier=100.0, correct_prob=0.99):
    features, targets = kept(features, targets)
    total = 0.0
    for log_p, y in zip(np_log_softmax(np_logits(features)), targets):
        t = teacher(y, temperature, correct_prob)
        kl = (t * (np.log(t) - log_p)).sum()
        # Yuan et al.'s nn.KLDivLoss() averages over the m classes too: hence the / M.
        total += (1 - alpha) * -log_p[y] + alpha * multiplier * kl / M
    return total / len(targets)


def run(head, targets, features=FEATURES, **kwargs):
    return head(torch.tensor(features, **kwargs), torch.tensor(targets))


def test_label_smoothing_matches_hand_computation_and_pytorch():
    head = make(LabelSmoothing)
    out = run(head, TARGETS)
    assert out.loss.item() == pytest.approx(hand_label_smoothing(FEATURES, TARGETS), rel=1e-6)
    logits = head.output(torch.tensor(FEATURES))
    torch.testing.assert_close(out.loss, F.cross_entropy(logits, torch.tensor(TARGETS), label_smoothing=0.1))
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(head.logits(torch.tensor(FEATURES)), logits)
    # With ignored rows PyTorch's mean also skips them: still the same number.
    targets = [0, -100, 2, 1]
    torch.testing.assert_close(
        run(head, targets).loss, F.cross_entropy(logits, torch.tensor(targets), label_smoothing=0.1)
    )
    for epsilon in (0.0, 0.3, 1.0):
        assert run(make(LabelSmoothing, epsilon=epsilon), TARGETS).loss.item() == pytest.approx(
            hand_label_smoothing(FEATURES, TARGETS, epsilon), rel=1e-6
        )


def test_label_smoothing_terms_are_the_two_cross_entropies():
    out = run(make(LabelSmoothing, epsilon=0.2), TARGETS)
    log_p = np_log_softmax(np_logits(FEATURES))
    ce = -np.mean([log_p[i, y] for i, y in enumerate(TARGETS)])
    uniform = -np.mean(log_p.mean(axis=1))
    assert out.terms["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out.terms["uniform"].item() == pytest.approx(uniform, rel=1e-6)
    assert out.loss.item() == pytest.approx(0.8 * ce + 0.2 * uniform, rel=1e-6)
    assert not out.terms["ce"].requires_grad


def test_confidence_penalty_matches_hand_computation():
    for beta in (0.1, 0.5):
        out = run(make(ConfidencePenalty, beta=beta), TARGETS)
        assert out.loss.item() == pytest.approx(hand_confidence_penalty(FEATURES, TARGETS, beta), rel=1e-6)
    log_p = np_log_softmax(np_logits(FEATURES))
    entropy = -np.mean((np.exp(log_p) * log_p).sum(axis=1))
    out = run(make(ConfidencePenalty), TARGETS)
    assert out.terms["entropy"].item() == pytest.approx(entropy, rel=1e-6)
    assert out.loss.item() == pytest.approx(out.terms["ce"].item() - 0.1 * entropy, rel=1e-6)


def test_confidence_penalty_gradient_includes_the_entropy_term():
    """dL/dz by hand: (p - onehot) / n + beta p (log p + H) / n, the entropy is not detached."""
    head = identity_head(ConfidencePenalty, beta=0.5)
    logits = torch.tensor(np_logits(FEATURES), dtype=torch.float32, requires_grad=True)
    head(logits, torch.tensor(TARGETS)).loss.backward()
    log_p = np_log_softmax(np_logits(FEATURES))
    p = np.exp(log_p)
    entropy = -(p * log_p).sum(axis=1, keepdims=True)
    expected = (p - np.eye(M)[TARGETS] + 0.5 * p * (log_p + entropy)) / len(TARGETS)
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_tfkd_matches_hand_computation_and_yuan_et_al_code():
    head = make(TfKDReg)
    out = run(head, TARGETS)
    assert out.loss.item() == pytest.approx(hand_tfkd(FEATURES, TARGETS), rel=1e-5)
    # Their loss_kd_regularization: nn.KLDivLoss() with the default reduction "mean", which
    # divides the summed KL by N * m (spelled out here: PyTorch plans to change that default).
    logits = head.output(torch.tensor(FEATURES))
    q = torch.full((4, M), 0.01 / (M - 1)).scatter_(1, torch.tensor(TARGETS)[:, None], 0.99)
    kl = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(q / 20, dim=1), reduction="sum") / (4 * M)
    theirs = 0.9 * F.cross_entropy(logits, torch.tensor(TARGETS)) + 0.1 * kl * 100
    torch.testing.assert_close(out.loss, theirs)
    options = {"temperature": 2.0, "alpha": 0.4, "multiplier": 3.0, "correct_prob": 0.7}
    assert run(make(TfKDReg, **options), TARGETS).loss.item() == pytest.approx(
        hand_tfkd(FEATURES, TARGETS, **options), rel=1e-5
    )


def test_tfkd_logs_the_per_example_kl_and_teacher_is_softmax_of_q_over_t():
    head = make(TfKDReg, temperature=1.5, correct_prob=0.8)
    out = run(head, TARGETS)
    log_p = np_log_softmax(np_logits(FEATURES))
    kls = [
        (teacher(y, 1.5, 0.8) * (np.log(teacher(y, 1.5, 0.8)) - log_p[i])).sum()
        for i, y in enumerate(TARGETS)
    ]
    assert out.terms["kl"].item() == pytest.approx(np.mean(kls), rel=1e-5)
    assert out.terms["kl"].item() > 0
    table = head.teacher(torch.tensor(TARGETS))
    np.testing.assert_allclose(table.numpy(), [teacher(y, 1.5, 0.8) for y in TARGETS], rtol=1e-6)
    assert not table.requires_grad


def test_tfkd_teacher_carries_no_gradient():
    """dL/dz by hand treats the teacher as a constant: (1-a)(p - onehot)/n + a mult/m (p - t)/n."""
    head = identity_head(TfKDReg, temperature=3.0, alpha=0.3, multiplier=6.0)
    logits = torch.tensor(np_logits(FEATURES), dtype=torch.float32, requires_grad=True)
    head(logits, torch.tensor(TARGETS)).loss.backward()
    p = np.exp(np_log_softmax(np_logits(FEATURES)))
    t = np.array([teacher(y, 3.0) for y in TARGETS])
    expected = (0.7 * (p - np.eye(M)[TARGETS]) + 0.3 * 6.0 / M * (p - t)) / len(TARGETS)
    np.testing.assert_allclose(logits.grad.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_tfkd_small_temperature_does_not_overflow():
    out = run(make(TfKDReg, temperature=1e-3, correct_prob=0.9), TARGETS)
    assert math.isfinite(out.loss.item())


@pytest.mark.parametrize(
    "cls, options",
    [(LabelSmoothing, {"epsilon": 0.0}), (ConfidencePenalty, {"beta": 0.0}), (TfKDReg, {"alpha": 0.0})],
)
def test_switched_off_regulariser_is_plain_cross_entropy(cls, options):
    head = make(cls, **options)
    onehot = make(OneHot)
    features = torch.tensor(FEATURES, requires_grad=True)
    targets = torch.tensor([0, 1, -100, 2])
    ours = head(features, targets).loss
    expected = onehot(features, targets).loss
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(torch.autograd.grad(ours, features), torch.autograd.grad(expected, features))


HAND = {LabelSmoothing: hand_label_smoothing, ConfidencePenalty: hand_confidence_penalty, TfKDReg: hand_tfkd}


@pytest.mark.parametrize("cls", METHODS)
def test_ignored_rows_contribute_nothing(cls):
    head = make(cls)
    base = run(head, TARGETS)
    features = torch.tensor([*FEATURES, [5.0, -4.0], [0.3, 0.3]], requires_grad=True)
    padded = head(features, torch.tensor([*TARGETS, -100, -100]))
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    for name in base.terms:
        assert padded.terms[name].item() == pytest.approx(base.terms[name].item(), rel=1e-6)
    padded.loss.backward()
    assert torch.all(features.grad[4:] == 0)
    assert features.grad[:4].abs().sum() > 0
    assert padded.logits.shape == (6, M)
    # An ignored row in the middle, and a custom ignore_index, against the hand computation.
    assert run(head, [0, -100, 2, 1]).loss.item() == pytest.approx(
        HAND[cls](FEATURES, [0, -100, 2, 1]), rel=1e-5
    )
    custom = make(cls, ignore_index=7)
    assert run(custom, [0, 7, 2, 1]).loss.item() == pytest.approx(
        HAND[cls](FEATURES, [0, -100, 2, 1]), rel=1e-5
    )


@pytest.mark.parametrize("cls", METHODS)
def test_all_rows_ignored_gives_a_finite_zero_loss(cls):
    features = torch.tensor(FEATURES, requires_grad=True)
    out = make(cls)(features, torch.full((4,), -100))
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert torch.all(features.grad == 0)


@pytest.mark.parametrize("cls", METHODS)
def test_label_outside_the_class_range_is_a_clear_error(cls):
    head = make(cls)
    for bad in (3, -1):
        with pytest.raises(LabelRangeError, match=rf"\[{bad}\].*outside \[0, 3\)"):
            run(head, [0, 1, bad, 1])


@pytest.mark.parametrize(
    "cls, options",
    [
        (LabelSmoothing, {"epsilon": 1.5}),
        (LabelSmoothing, {"epsilon": -0.1}),
        (ConfidencePenalty, {"beta": -0.1}),
        (TfKDReg, {"temperature": 0.0}),
        (TfKDReg, {"alpha": 1.2}),
        (TfKDReg, {"multiplier": -1.0}),
        (TfKDReg, {"correct_prob": 0.0}),
    ],
)
def test_invalid_options_are_rejected(cls, options):
    with pytest.raises(ValueError, match=next(iter(options))):
        cls(D, M, **options)


@pytest.mark.parametrize("cls", METHODS)
def test_init_std_sets_a_truncated_normal_output_layer(cls):
    torch.manual_seed(0)
    head = cls(50, 40, init_std=0.01)
    assert head.output.weight.abs().max() <= 0.02
    assert torch.all(head.output.bias == 0)
    assert 0.005 < head.output.weight.std().item() < 0.015


@pytest.mark.parametrize("cls", METHODS)
def test_trains_in_a_user_loop(cls):
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU())
    head = cls(16, 4)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    inputs = torch.randn(64, 6)
    target = inputs[:, :4].argmax(1)
    for _ in range(60):
        out = head(backbone(inputs), target)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert (head.logits(backbone(inputs)).argmax(1) == target).float().mean() > 0.9
