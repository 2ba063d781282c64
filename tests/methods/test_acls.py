"""ACLS (Park et al., ICCV 2023): the loss and its gradient by hand (float64), the authors' regulariser
with their reduction, and what their detach means: the gradient is not the loss's slope at the
largest logit. The contract every new peer owes is in test_new_peers.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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

ACTIVE = {"alpha": 0.5, "margin": 1.0}


def hand_acls(z, y, alpha=0.1, margin=10.0, pos_lambda=1.0, neg_lambda=0.1):
    """CE + alpha (pos_lambda relu(M - margin)^2 + neg_lambda / (m - 1) sum_{k != top} relu(M - z_k -
    margin)^2), M = max z; the second term's M is a constant, so only the first reaches the top logit."""
    p = softmax(z)
    top, largest = z.argmax(), z.max()
    above = max(largest - margin, 0.0)
    gaps = np.maximum(largest - z - margin, 0.0)
    gaps[top] = 0.0
    reg = pos_lambda * above**2 + neg_lambda * (gaps**2).sum() / (M - 1)
    push = 2 * pos_lambda * above * np.eye(M)[top] - 2 * neg_lambda * gaps / (M - 1)
    return -math.log(p[y]) + alpha * reg, p - np.eye(M)[y] + alpha * push


@pytest.mark.parametrize("targets", [TARGETS, IGNORING], ids=["all-rows", "an-ignored-row"])
@pytest.mark.parametrize(
    "options",
    [
        {},  # the default margin of 10: no hinge fires on these logits (plain cross-entropy)
        ACTIVE,
        {"alpha": 2.0, "margin": 2.5, "pos_lambda": 0.5, "neg_lambda": 3.0},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "defaults",
)
def test_loss_and_gradient_match_the_hand_computation(options, targets):
    out, grad = step(identity_head("acls", **options), targets=targets)
    assert_step_is(out, grad, *batch_by_hand(mean_of_rows(hand_acls), targets=targets, **options))
    if options:
        assert out.terms["reg"].item() > 0


def test_the_rows_put_the_hinges_on_both_sides_of_their_margins():
    z = np.array(LOGITS)
    gaps = z.max(1, keepdims=True) - z
    assert (z.max(1) > 2.5).any() and (z.max(1) < 1.0).any()
    assert (gaps > 2.5).any() and ((gaps > 0) & (gaps < 1.0)).any()


def test_acls_is_park_et_al_s_regulariser():
    """Their ACLS: CE + alpha (pos_lambda sum(I relu(M - margin)^2) / N + neg_lambda sum((1 - I)
    relu(sg(M) - z - margin)^2) / (N (m - 1))), I = [z == M] detached, M = max z."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    largest = z.max(dim=1).values.unsqueeze(1).repeat(1, M)
    indicator = (largest.detach() == z.detach()).double()
    pos = indicator * F.relu(largest - 1.0) ** 2
    neg = (1.0 - indicator) * F.relu(largest.detach() - z - 1.0) ** 2
    reg = 1.0 * pos.sum() / 5 + 0.1 * neg.sum() / (5 * (M - 1))
    theirs = F.cross_entropy(z, target) + 0.5 * reg
    ours = identity_head("acls", **ACTIVE)(z, target)
    torch.testing.assert_close(ours.loss, theirs, rtol=1e-14, atol=0)
    torch.testing.assert_close(torch.autograd.grad(ours.loss, z), torch.autograd.grad(theirs, z))
    assert ours.terms["reg"].item() == pytest.approx(reg.item(), rel=1e-14)


def test_the_largest_logit_learns_only_from_its_own_hinge():
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    top = z.detach().argmax(1)
    head = identity_head("acls", margin=1.0, neg_lambda=5.0)
    (grad,) = torch.autograd.grad(head.hinges(z)[0].sum(), z)
    torch.testing.assert_close(grad[torch.arange(5), top], 2 * (z.detach().max(1).values - 1.0).clamp(min=0))
    assert (grad.scatter(1, top[:, None], 0.0) <= 0).all() and (grad < 0).any()


def test_the_gradient_is_the_loss_s_slope_less_the_held_maximum_s_share():
    """M is held constant in the gap terms (as theirs), so the gradient is not the loss's slope: the
    two differ at each row's largest logit by exactly the gaps' d/dM,
    ``alpha neg_lambda 2 sum_k g_k / ((m - 1) N)``."""
    head = identity_head("acls", **ACTIVE)
    target = torch.tensor(TARGETS)
    z = torch.tensor(LOGITS, dtype=torch.float64)
    slope = torch.zeros_like(z)
    for i in range(5):
        for k in range(M):
            bump = torch.zeros_like(z)
            bump[i, k] = 1e-6
            with torch.no_grad():
                slope[i, k] = (head(z + bump, target).loss - head(z - bump, target).loss) / 2e-6
    _, grad = step(head)
    gaps = (z.max(1, keepdim=True).values - z - 1.0).clamp(min=0)
    held = 0.5 * 0.1 * 2 * gaps.sum(1) / ((M - 1) * 5)
    expected = slope - F.one_hot(z.argmax(1), M).double() * held[:, None]
    np.testing.assert_allclose(grad, expected.numpy(), rtol=0, atol=1e-8)
    assert held.max() > 1e-2


def test_a_tie_for_the_largest_logit_counts_each_tied_logit_as_the_largest():
    """Their indicator marks every logit equal to M: each tied one takes the first hinge, none a gap
    term, and the first hinge's gradient goes, once per tied logit, to the one the max picked."""
    head = identity_head("acls", **ACTIVE)
    z = torch.tensor([[3.0, 3.0, 0.0, -2.0]], dtype=torch.float64, requires_grad=True)
    reg, _, top, _ = head.hinges(z)
    assert reg.item() == pytest.approx(2 * (3.0 - 1.0) ** 2 + 0.1 * (2.0**2 + 4.0**2) / 3)
    (grad,) = torch.autograd.grad(reg.sum(), z)
    assert grad[0, top.item()].item() == pytest.approx(2 * 2 * 2.0) and grad[0, 1 - top.item()] == 0
    chunked = identity_head("acls", chunk_size=1, **ACTIVE)
    _, row_grad = chunked.row_loss(z.detach(), torch.tensor([2]))
    _, at_once = step(head, z.detach().tolist(), [2])
    np.testing.assert_allclose(row_grad.numpy(), at_once, rtol=1e-12, atol=1e-15)
