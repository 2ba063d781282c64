"""The tag embedding's fast path (methods/label_embedding/tag_fast.py): its value, terms and
gradients against the formula through autograd (tags.py, itself checked by hand)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelemb import methods
from labelemb.methods.label_embedding.tag_fast import log_sigmoid, tag_closed_form
from labelemb.methods.label_embedding.tags import TAG_TERMS, tag_embedding_loss

OPTIONS = {"w_gold": 0.3, "w_soft": 0.7, "tau": 2.0, "alpha": 0.6}


def tag_batch(rows: int = 6, tags: int = 5, scale: float = 3.0):
    generator = torch.Generator().manual_seed(7)
    z = torch.randn(rows, 2 * tags, generator=generator, dtype=torch.float64) * scale
    embedding = torch.eye(tags, dtype=torch.float64) + 0.3 * torch.randn(
        tags, tags, generator=generator, dtype=torch.float64
    )
    carried = torch.rand(rows, tags, generator=generator) < 0.4
    carried[0] = False  # a row without tags
    carried[1] = True  # a row with every tag
    return z, embedding, carried


def test_the_closed_form_gives_the_formulas_value_terms_and_gradients():
    z, embedding, carried = tag_batch()
    tags = carried.shape[1]
    assert bool((torch.sigmoid(z[:, tags:]) > OPTIONS["alpha"]).logical_and(carried).any())  # penalty on
    loss, terms, grad_z, grad_e = tag_closed_form(z, embedding, carried, float(len(z)), *OPTIONS.values())

    z_leaf, e_leaf = z.clone().requires_grad_(), embedding.clone().requires_grad_()
    expected, expected_terms = tag_embedding_loss(
        z_leaf[:, :tags], z_leaf[:, tags:], e_leaf, carried, **OPTIONS
    )
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-12)
    for name, value in zip(TAG_TERMS, terms):
        torch.testing.assert_close(value, expected_terms[name].detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_z, z_leaf.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_e, e_leaf.grad, rtol=0, atol=1e-12)


def method_step(fast: bool | str, features: torch.Tensor, carried: torch.Tensor, with_logits: bool = False):
    torch.manual_seed(0)
    method = methods.build("label_embedding", in_features=features.shape[1], num_classes=carried.shape[1])
    method = method.double()
    method.fast_path = fast
    with torch.no_grad():
        method.embedding.add_(0.2 * torch.randn_like(method.embedding))
        method.heads.weight.mul_(8.0)  # o2 past alpha on some carried tags: the penalty's slope
    features = features.clone().requires_grad_()
    out = method(features, carried)
    (out.loss + (out.logits.square().sum() if with_logits else 0.0)).backward()
    gradients = (features.grad, method.heads.weight.grad, method.heads.bias.grad, method.embedding.grad)
    return out, gradients


@pytest.mark.parametrize("with_logits", [False, True])
def test_a_step_on_the_fast_path_is_the_autograd_step(with_logits):
    _, _, carried = tag_batch()
    features = torch.randn(len(carried), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fast, fast_gradients = method_step(True, features, carried, with_logits)
    slow, slow_gradients = method_step(False, features, carried, with_logits)
    assert float(slow.terms["penalty"]) > 0.0
    torch.testing.assert_close(fast.loss, slow.loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=0, atol=1e-12)
    assert set(fast.terms) == set(TAG_TERMS)
    for name in TAG_TERMS:
        torch.testing.assert_close(fast.terms[name], slow.terms[name], rtol=0, atol=1e-12)
    for mine, theirs in zip(fast_gradients, slow_gradients):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_the_fused_fast_path_is_the_autograd_step():
    # fast_path="fused": the same closed forms through torch.compile (on the CPU, compiled C++).
    _, _, carried = tag_batch()
    features = torch.randn(len(carried), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fused, fused_gradients = method_step("fused", features, carried, with_logits=True)
    slow, slow_gradients = method_step(False, features, carried, with_logits=True)
    torch.testing.assert_close(fused.loss, slow.loss, rtol=0, atol=1e-12)
    torch.testing.assert_close(fused.logits, slow.logits, rtol=0, atol=1e-12)
    for name in TAG_TERMS:
        torch.testing.assert_close(fused.terms[name], slow.terms[name], rtol=0, atol=1e-12)
    for mine, theirs in zip(fused_gradients, slow_gradients):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_an_empty_batch_on_the_fast_path_is_a_zero_loss_with_zero_gradients():
    carried = torch.zeros(0, 5, dtype=torch.bool)
    out, gradients = method_step(True, torch.zeros(0, 4, dtype=torch.float64), carried)
    assert float(out.loss.detach()) == 0.0
    assert all(float(gradient.abs().sum()) == 0.0 for gradient in gradients)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_sigmoid_from_the_probability_holds_in_both_tails(dtype):
    z = torch.tensor([-1000.0, -200.0, -90.0, -30.0, -1.0, 0.0, 1.0, 30.0, 200.0], dtype=dtype)
    ours = log_sigmoid(torch.sigmoid(z), z)
    assert bool(torch.isfinite(ours).all())
    torch.testing.assert_close(
        ours, F.logsigmoid(z), rtol=torch.finfo(dtype).eps, atol=torch.finfo(dtype).eps
    )
