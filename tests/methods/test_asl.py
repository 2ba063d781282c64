"""The asymmetric loss (asl, Ridnik et al. 2021) on tag sets: its formula by hand, the probability
shift that drops easy absent tags, its options, and its refusal of single-label rows."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.repo_paths import DOCS

from labelemb import methods
from labelemb.methods.registry import method_builder
from labelemb.search_spaces import Space

pytestmark = pytest.mark.usefixtures("one_thread")

LOGITS = [[2.0, -4.0, 0.5, -1.0], [-0.5, 3.0, -2.0, 1.0]]
TAGS = [[1, 0, 0, 1], [1, 1, 0, 0]]


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def asl_by_hand(gamma_neg: float, gamma_pos: float, clip: float) -> float:
    """``mean_n -sum_k [y L+ + (1 - y) L-]`` over LOGITS and TAGS, written out."""
    rows = []
    for logits, tags in zip(LOGITS, TAGS):
        total = 0.0
        for z, y in zip(logits, tags):
            p = sigmoid(z)
            if y:
                total -= (1.0 - p) ** gamma_pos * math.log(p)
            else:
                p_m = max(p - clip, 0.0)
                total -= p_m**gamma_neg * math.log(1.0 - p_m)
        rows.append(total)
    return sum(rows) / len(rows)


def asl(**options) -> tuple[methods.Method, torch.Tensor]:
    """asl whose linear layer is the identity: the features are the logits."""
    method = methods.build("asl", in_features=4, num_classes=4, **options)
    with torch.no_grad():
        method.output.weight.copy_(torch.eye(4))
        method.output.bias.zero_()
    return method, torch.tensor(LOGITS)


@pytest.mark.parametrize(
    "options",
    [{}, {"gamma_neg": 2.0, "gamma_pos": 1.0, "clip": 0.1}, {"gamma_neg": 0.5, "clip": 0.0}],
    ids=["defaults", "other", "no-shift"],
)
def test_the_loss_is_the_papers_formula(options):
    method, features = asl(**options)
    settings = {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05, **options}
    out = method(features, torch.tensor(TAGS, dtype=torch.bool))
    assert out.loss.item() == pytest.approx(asl_by_hand(**settings), rel=1e-6)
    assert set(out.terms) == {"asl", "bce"}
    torch.testing.assert_close(out.logits, features)


def test_its_defaults_are_the_papers():
    assert {key: methods.options("asl")[key] for key in ("gamma_neg", "gamma_pos", "clip")} == {
        "gamma_neg": 4.0,
        "gamma_pos": 0.0,
        "clip": 0.05,
    }


def test_without_focusing_or_shift_it_is_the_binary_cross_entropy():
    method, features = asl(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    out = method(features, torch.tensor(TAGS, dtype=torch.bool))
    torch.testing.assert_close(out.loss, out.terms["bce"])
    onehot = methods.build("onehot", in_features=4, num_classes=4)
    onehot.load_state_dict(method.state_dict())
    torch.testing.assert_close(out.loss, onehot(features, torch.tensor(TAGS, dtype=torch.bool)).loss)


def test_the_clip_makes_an_easy_absent_tag_add_exactly_nothing():
    # sigmoid(-4) = 0.018 < 0.05: p_m = 0, so the absent tag's term and its gradient are exactly 0
    method, _ = asl()
    logits = torch.tensor([[-4.0, -2.0, 1.0]], requires_grad=True)
    positive, negative = method.tag_terms(logits)
    assert negative[0, 0].item() == 0.0
    (grad,) = torch.autograd.grad(negative.sum(), logits)
    assert grad[0, 0].item() == 0.0
    assert negative[0, 1].item() < 0.0 and grad[0, 1].item() != 0.0  # sigmoid(-2) = 0.12 > 0.05
    # a row whose every tag is absent and easy: the loss is exactly 0
    method, _ = asl()
    easy = torch.full((3, 4), -5.0)
    assert method(easy, torch.zeros(3, 4, dtype=torch.bool)).loss.item() == 0.0


def test_the_shift_weighs_a_confident_absent_tag_down_against_the_binary_cross_entropy():
    # gamma_neg weighs a likely absent tag (a missing label, maybe) by p_m^4 of its log(1 - p_m)
    method, _ = asl(gamma_neg=4.0, clip=0.05)
    logits = torch.tensor([[1.0]])
    _, negative = method.tag_terms(logits)
    p_m = sigmoid(1.0) - 0.05
    assert -negative.item() == pytest.approx(-(p_m**4) * math.log(1.0 - p_m), rel=1e-6)
    assert -negative.item() < -math.log(1.0 - sigmoid(1.0))


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_it_has_the_gradient_of_its_formula(clip):
    method = methods.build("asl", in_features=3, num_classes=3, clip=clip, gamma_pos=1.0).double()
    logits = torch.tensor([[2.0, -4.0, 0.5], [-0.5, 3.0, -1.0]], dtype=torch.double, requires_grad=True)
    tags = torch.tensor([[1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda z: method.tag_loss(z, tags, z).loss, (logits,))


def test_its_focusing_weights_are_differentiated_as_the_methods_page_says():
    # The gradient of w(p) log(...) keeps w's own derivative (the authors' AsymmetricLossOptimized);
    # with w detached (their AsymmetricLoss's default) the gradient is another one.
    method = methods.build("asl", in_features=2, num_classes=2, gamma_pos=1.0).double()
    logits = torch.tensor([[1.5, 2.0]], dtype=torch.double, requires_grad=True)
    tags = torch.tensor([[True, False]])
    (grad,) = torch.autograd.grad(method.tag_loss(logits, tags, logits).loss, logits)

    def by_hand(detach: bool) -> torch.Tensor:
        z = logits.detach().requires_grad_()
        p = torch.sigmoid(z)
        p_m = (p[0, 1] - 0.05).clamp(min=0.0)
        w_pos, w_neg = 1.0 - p[0, 0], p_m**4
        if detach:
            w_pos, w_neg = w_pos.detach(), w_neg.detach()
        loss = -(w_pos * torch.log(p[0, 0]) + w_neg * torch.log1p(-p_m))
        return torch.autograd.grad(loss, z)[0]

    torch.testing.assert_close(grad, by_hand(detach=False))
    assert not torch.allclose(grad, by_hand(detach=True), rtol=1e-3, atol=0.0)
    entry = (DOCS / "methods.md").read_text().split("**`asl`**", 1)[1]
    entry = entry.split("\n**`", 1)[0].split("\n## ", 1)[0]
    flat = " ".join(entry.split())
    assert "focusing weights are differentiated" in flat
    assert "`AsymmetricLossOptimized`" in flat and "`AsymmetricLoss`" in flat


def test_it_is_stable_at_extreme_logits_in_half_and_single_precision():
    method, _ = asl(gamma_pos=0.5, gamma_neg=0.5)
    for dtype in (torch.float32, torch.bfloat16):
        logits = torch.tensor([[300.0, -300.0, 300.0, -300.0]], dtype=dtype, requires_grad=True)
        positive, negative = method.to(dtype).tag_terms(logits)
        terms = torch.cat([positive, negative])
        (grad,) = torch.autograd.grad(terms.sum(), logits)
        assert torch.isfinite(terms).all() and torch.isfinite(grad).all(), dtype
        # a present tag at z = -300 costs 300; an absent one at +300 log(clip) at most
        assert positive[0, 1].item() == pytest.approx(-300.0, rel=1e-2)
        assert negative[0, 2].item() >= math.log(0.05) - 1e-2


@pytest.mark.parametrize(
    "options, says",
    [
        ({"gamma_neg": -1.0}, "gamma_neg must be a finite number >= 0"),
        ({"gamma_pos": float("nan")}, "gamma_pos must be a finite number >= 0"),
        ({"gamma_neg": float("inf")}, "gamma_neg must be a finite number >= 0"),
        ({"clip": 1.0}, r"clip must lie in \[0, 1\)"),
        ({"clip": -0.01}, r"clip must lie in \[0, 1\)"),
    ],
)
def test_invalid_options_are_refused(options, says):
    with pytest.raises(ValueError, match=says):
        methods.build("asl", in_features=3, num_classes=3, **options)


def test_it_serves_tag_sets_only_and_says_why():
    cls = methods.method_class("asl")
    assert cls.serves == {"tags"} and cls.stackable and not cls.chunkable
    assert "asl" in methods.serving("tags")
    assert "asl" not in methods.serving("class") and "asl" not in methods.serving("token")
    assert "softmax" in methods.why_not_serving("asl", "class")
    assert "token" in methods.why_not_serving("asl", "token")
    method = methods.build("asl", in_features=3, num_classes=3)
    with pytest.raises(TypeError, match=r"asl trains on tag sets only \(a bool \(N, 3\) target\)"):
        method(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_its_search_space_is_declared_and_buildable_at_every_bound():
    space = methods.search_space("asl")
    assert space == {
        "gamma_neg": Space.floats(0.0, 6.0),
        "gamma_pos": Space.floats(0.0, 2.0),
        "clip": Space.floats(0.0, 0.2),
    }
    build = method_builder("asl")
    for key, bounds in space.items():
        for value in (bounds.low, bounds.high):
            build({key: value})
