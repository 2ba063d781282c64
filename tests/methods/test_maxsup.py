"""MaxSup (Zhou et al., NeurIPS 2025): the loss and its gradient by hand (float64), the authors'
training step with their ramp, label smoothing with the top logit for the gold one, and the ramp
over a run's epochs. The contract every new peer owes is in test_new_peers.py."""

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

from labelemb.methods.maxsup import MaxSuppression
from labelemb.training import train


def hand_maxsup(z, y, weight):
    """``-log p_y + weight (max z - mean z)``; its gradient ``p - e_y + weight (e_argmax - 1/m)``."""
    p = softmax(z)
    loss = -math.log(p[y]) + weight * (z.max() - z.mean())
    return loss, p - np.eye(M)[y] + weight * (np.eye(M)[z.argmax()] - 1.0 / M)


@pytest.mark.parametrize("targets", [TARGETS, IGNORING], ids=["all-rows", "an-ignored-row"])
@pytest.mark.parametrize(
    ("options", "weight"),
    [({"epochs": 3}, 0.1), ({"epochs": 3, "alpha": 0.3, "alpha_end": 0.9}, 0.3)],
    ids=["defaults", "alpha=0.3"],
)
def test_loss_and_gradient_match_the_hand_computation(options, weight, targets):
    out, grad = step(identity_head("maxsup", **options), targets=targets)
    assert_step_is(out, grad, *batch_by_hand(mean_of_rows(hand_maxsup), targets=targets, weight=weight))
    kept = [i for i, y in enumerate(targets) if y != -100]
    lead = np.mean([max(LOGITS[i]) - np.mean(LOGITS[i]) for i in kept])
    assert out.terms["max_suppression"].item() == pytest.approx(lead, rel=1e-12)


def test_maxsup_is_zhou_et_al_s_loss_with_their_ramp():
    """Their training step: CE + lam * (z.topk(1)[0] - z.mean(-1)).mean(), lam = 0.1 + 0.1 e / (E - 1)
    in the 0-based epoch e of E, nothing detached; past E our weight stays at its last value."""
    head = identity_head("maxsup", epochs=3)
    target = torch.tensor(TARGETS)
    for epoch in range(5):
        z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
        lam = 0.1 + 0.1 * min(epoch, 2) / (3 - 1)
        theirs = F.cross_entropy(z, target) + lam * (z.topk(1, -1)[0] - z.mean(-1, keepdim=True)).mean()
        ours = head(z, target).loss
        torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=0)
        torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))
        assert head.weight().item() == pytest.approx(lam, rel=1e-15)
        head.on_epoch_end()
    assert int(head.epoch) == 5
    single = identity_head("maxsup", epochs=1, alpha=0.25, alpha_end=0.9)
    assert single.weight().item() == 0.25  # one epoch: the first epoch's weight (their max(1, E - 1))


def test_maxsup_is_label_smoothing_with_the_top_logit_for_the_gold_one():
    """Label smoothing's loss is CE + epsilon (z_y - mean z) (PyTorch's convention): on rows whose
    gold class is on top, maxsup at a fixed weight epsilon is label smoothing; on the others it is not."""
    maxsup = identity_head("maxsup", epochs=1, alpha=0.2, alpha_end=0.2)
    smoothing = identity_head("label_smoothing", epsilon=0.2)
    for rows, same in (([0, 2, 4], True), ([1, 3], False)):
        logits, targets = [LOGITS[i] for i in rows], [TARGETS[i] for i in rows]
        ours, grad = step(maxsup, logits, targets)
        theirs, smoothing_grad = step(smoothing, logits, targets)
        assert (ours.loss.item() == pytest.approx(theirs.loss.item(), rel=1e-12)) == same
        assert np.allclose(grad, smoothing_grad, rtol=1e-10, atol=1e-14) == same


def test_the_top_logit_is_held_down_whatever_the_label():
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(MaxSuppression.lead(z).sum(), z)
    torch.testing.assert_close(grad, F.one_hot(z.detach().argmax(1), M).double() - 1.0 / M)
    head = identity_head("maxsup", epochs=3, alpha=0.3)
    target = torch.tensor(TARGETS)
    assert torch.autograd.gradcheck(lambda x: head(x, target).loss, (z,))


def test_the_weight_follows_the_run_s_epochs(small_config, digits, monkeypatch):
    """The trainer passes train.epochs; each epoch's steps use 0.1 + 0.1 e / (E - 1)."""
    seen: list[float] = []
    loss = MaxSuppression.compute_loss

    def spy(self, logits, rows, features, index):
        if self.training:
            seen.append(float(self.weight()))
        return loss(self, logits, rows, features, index)

    monkeypatch.setattr(MaxSuppression, "compute_loss", spy)
    train(small_config("method.name=maxsup", "train.epochs=3"), dataset=digits)
    assert sorted(set(seen)) == pytest.approx([0.1, 0.15, 0.2])
    assert seen[-12:] == pytest.approx([0.2] * 12)  # the last epoch's 12 batches
