"""Dual focal loss (Tao et al., ICML 2023): the loss and its gradient by hand (float64), the authors'
loss with their reduction, p_j differentiated but chosen without gradient, and extreme rows. The
contract every new peer owes is in test_new_peers.py."""

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

from labelemb import methods


def hand_dual_focal(z, y, gamma=5.0):
    """``-(1 - p_y + p_j)^g log p_y`` with p_j the largest probability below p_y (0 if none); the
    gradient through ``w = 1 - p_y + p_j`` with ``dp_k/dz = p_k (e_k - p)``."""
    p = softmax(z)
    e = np.eye(M)
    below = [k for k in range(M) if p[k] < p[y]]
    j = max(below, key=lambda k: p[k]) if below else None
    p_j = p[j] if below else 0.0
    w = 1 - p[y] + p_j
    dw = -p[y] * (e[y] - p) + (p_j * (e[j] - p) if below else 0.0)
    loss = -(w**gamma) * math.log(p[y])
    return loss, w**gamma * (p - e[y]) - gamma * w ** (gamma - 1) * math.log(p[y]) * dw


@pytest.mark.parametrize("targets", [TARGETS, IGNORING], ids=["all-rows", "an-ignored-row"])
@pytest.mark.parametrize("options", [{}, {"gamma": 2.0}, {"gamma": 0.5}], ids=["gamma=5", "2", "0.5"])
def test_loss_and_gradient_match_the_hand_computation(options, targets):
    out, grad = step(identity_head("dual_focal", **options), targets=targets)
    assert_step_is(out, grad, *batch_by_hand(mean_of_rows(hand_dual_focal), targets=targets, **options))
    kept = [i for i, y in enumerate(targets) if y != -100]
    ce = -np.mean([math.log(softmax(np.array(LOGITS[i]))[targets[i]]) for i in kept])
    assert out.terms["ce"].item() == pytest.approx(ce, rel=1e-12)


def test_the_rows_rank_the_gold_class_first_in_between_and_last():
    p = softmax(np.array(LOGITS))
    above = (p > p[np.arange(5), TARGETS][:, None]).sum(1)
    assert {0, 2, 3} <= set(above.tolist())  # row 1: the class just below the gold one is not the top


def test_dual_focal_is_tao_et_al_s_loss_averaged():
    """Their DualFocalLoss: p_j = topk(mask * p) with mask = [p < p_k] (p_k the gold probability), the
    loss -(1 - p_k + p_j)^gamma log p_k summed over the batch (size_average False); ours is the mean."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    log_p = F.log_softmax(z, dim=1)
    log_p_k = log_p.gather(1, target[:, None]).view(-1)
    p_k = log_p_k.exp()
    p_j = torch.topk((log_p.exp() < p_k[:, None]) * log_p.exp(), 1)[0].squeeze()
    theirs = (-1 * (1 - p_k + p_j) ** 2.0 * log_p_k).sum() / len(TARGETS)
    ours = identity_head("dual_focal", gamma=2.0)(z, target).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=0)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))


def test_p_j_is_differentiated_and_gamma_0_is_cross_entropy():
    head = identity_head("dual_focal", gamma=2.0)
    target = torch.tensor(TARGETS)
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: head(x, target).loss, (z,))
    # Row 0's runner-up (class 1) gets more than it would with p_j held constant.
    (grad,) = torch.autograd.grad(head(z[:1], target[:1]).loss, z)
    p = F.softmax(z.detach()[0], -1)
    w = 1 - p[0] + p[1]
    held = w**2 * p[1] - 2 * w * torch.log(p[0]) * p[0] * p[1]  # d/dz_1 with sg(p_j)
    assert grad[0, 1].item() > held.item() + 1e-3
    plain, grad = step(identity_head("dual_focal", gamma=0.0))
    onehot, onehot_grad = step(identity_head("onehot"))
    torch.testing.assert_close(plain.loss, onehot.loss)
    np.testing.assert_allclose(grad, onehot_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_extreme_rows_keep_the_loss_and_gradient_finite(gamma, dtype):
    """p_y rounding to 1 (the weight's base 0: with a gamma below 1 an infinite slope), a uniform row
    (no class below the gold one) and a gold class far below the rest, at once and chunked."""
    z = torch.tensor([[200.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [-50.0, 2.0, 3.0, 4.0]], dtype=dtype)
    target = torch.tensor([0, 1, 0])
    for chunk_size in (None, 1):
        head = methods.build("dual_focal", in_features=M, num_classes=M, gamma=gamma, chunk_size=chunk_size)
        head = head.to(dtype)
        with torch.no_grad():
            head.output.weight.copy_(torch.eye(M))
            head.output.bias.zero_()
        h = z.clone().requires_grad_()
        loss = head(h, target).loss
        (grad,) = torch.autograd.grad(loss, h)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
