"""MDCA (Hebbalaguppe et al., CVPR 2022): the loss and its gradient by hand (float64), the authors'
NLL+MDCA and FL+MDCA, a batch statistic (a row's gradient reads the other rows), micro-batches that
are not the batch and say so, and torchrun, where the statistic is the whole batch's. The contract
every new peer owes is in test_new_peers.py."""

from __future__ import annotations

import warnings

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
    softmax,
    step,
)
from helpers.run_checks import launch, read_metrics

from labelemb import methods


def hand_mdca(z, y, beta=1.0, gamma=0.0):
    """The batch's mean focal loss (gamma 0: CE) + beta (1/m) sum_c |mean_i p_ic - mean_i [y_i = c]|.

    Row i's gradient: ``c_i (p_i - e_y) / N`` (focal's factor ``c_i``, 1 for CE) plus, with
    ``s = sign(gap)``, ``beta / (m N) (p_i * s - p_i (p_i . s))``: the softmax's Jacobian applied to s."""
    n = len(y)
    p = softmax(z)
    p_y = p[np.arange(n), y]
    onehot = np.eye(M)[y]
    gap = p.mean(0) - onehot.mean(0)
    s = np.sign(gap)
    focal = (1 - p_y) ** gamma - gamma * p_y * (1 - p_y) ** (gamma - 1) * np.log(p_y) if gamma else 1.0
    loss = np.mean(-((1 - p_y) ** gamma) * np.log(p_y)) + beta * np.abs(gap).mean()
    grad = (focal * (p - onehot).T).T / n + beta / (M * n) * (p * s - p * (p @ s)[:, None])
    return loss, grad


@pytest.mark.parametrize("targets", [TARGETS, IGNORING], ids=["all-rows", "an-ignored-row"])
@pytest.mark.parametrize(
    "options",
    [{}, {"beta": 2.0}, {"beta": 3.0, "gamma": 1.0}, {"gamma": 0.5}],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "defaults",
)
def test_loss_and_gradient_match_the_hand_computation(options, targets):
    out, grad = step(identity_head("mdca", **options), targets=targets)
    loss, expected = batch_by_hand(hand_mdca, targets=targets, **options)
    assert_step_is(out, grad, loss, expected)
    kept = [i for i, y in enumerate(targets) if y != -100]
    gap = softmax(np.array(LOGITS))[kept].mean(0) - np.eye(M)[[targets[i] for i in kept]].mean(0)
    assert out.terms["mdca"].item() == pytest.approx(np.abs(gap).mean(), rel=1e-12)
    assert ("focal" in out.terms) == ("gamma" in options)


@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_mdca_is_hebbalaguppe_et_al_s_loss(gamma):
    """Their ClassficationAndMDCA: NLL (gamma 0) or their FocalLoss's mean (FL+MDCA) plus beta times
    MDCA, the mean over the classes of |mean(p[:, c]) - mean(target == c)| over the batch."""
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(TARGETS)
    log_p_t = F.log_softmax(z, dim=1).gather(1, target[:, None]).view(-1)
    classification = (-1 * (1 - log_p_t.exp()) ** gamma * log_p_t).mean()
    p = torch.softmax(z, dim=1)
    mdca = sum(torch.abs(p[:, c].mean() - (target == c).double().mean()) for c in range(M)) / M
    theirs = classification + 2.0 * mdca
    ours = identity_head("mdca", beta=2.0, gamma=gamma)(z, target).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-14, atol=0)
    torch.testing.assert_close(torch.autograd.grad(ours, z), torch.autograd.grad(theirs, z))


def test_a_row_s_gradient_reads_the_other_rows():
    """Nothing is detached (finite differences agree), and a row's gradient changes with the other
    rows' labels: MDCA is a statistic of the batch, through the signs of its per-class gaps."""
    head = identity_head("mdca", beta=2.0)
    z = torch.tensor(LOGITS, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: head(x, torch.tensor(TARGETS)).loss, (z,))
    first = torch.autograd.grad(head(z, torch.tensor(TARGETS)).loss, z)[0][0]
    other = torch.autograd.grad(head(z, torch.tensor([0, 3, 3, 3, 3])).loss, z)[0][0]
    assert (first - other).abs().max() > 1e-3


def micro_batch_gradients(head, features, target, parts):
    """Every gradient of micro_batch_loss over ``parts`` micro-batches of one step."""
    head.zero_grad(set_to_none=True)
    rows = features.clone().requires_grad_()
    items = (target != -100).sum()
    for chunk, labels in zip(rows.chunk(parts), target.chunk(parts)):
        head.micro_batch_loss(chunk, labels, items).loss.backward()
    return {"features": rows.grad, **{n: p.grad.clone() for n, p in head.named_parameters()}}


def test_micro_batches_are_not_the_batch_and_say_so():
    """Each micro-batch takes its own MDCA: the gradients differ from one batch's, and the method says
    why in one line when a trainer accumulates (the adapters call warn_inexact_accumulation)."""
    torch.manual_seed(0)
    head = methods.build("mdca", in_features=6, num_classes=5, beta=2.0).double()
    target = torch.randint(0, 5, (32,))
    target[:5] = -100
    features = torch.randn(32, 6, dtype=torch.float64)
    whole, parts = (micro_batch_gradients(head, features, target, k) for k in (1, 4))
    assert max(((parts[k] - g).abs().max() / g.abs().max()).item() for k, g in whole.items()) > 1e-2
    caveat = r"^mdca under gradient accumulation \(4 micro-batches a step\): its MDCA term compares"
    with pytest.warns(UserWarning, match=caveat) as caught:
        head.warn_inexact_accumulation(4)
    assert "\n" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head.warn_inexact_accumulation(1)
    whole_step = head.micro_batch_loss(features, target, (target != -100).sum()).loss
    torch.testing.assert_close(whole_step, head(features, target).loss)  # one micro-batch: the batch


def test_there_is_no_chunked_head():
    assert not methods.method_class("mdca").chunkable
    with pytest.raises(ValueError, match=r"has no option\(s\) chunk_size"):
        methods.build("mdca", in_features=3, num_classes=M, chunk_size=8)


def test_two_torchrun_processes_match_one_process(tmp_path):
    """Each process sums its rows' confidences and labels, and the sums are added over the processes
    with their gradient: MDCA is the whole batch's, so two processes train as one."""
    single, double = launch(tmp_path, "mdca", 1), launch(tmp_path, "mdca", 2)
    one, two = read_metrics(single), read_metrics(double)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        for key in ("train_loss", "train_mdca"):
            assert abs(a[key] - b[key]) <= 1e-4 * abs(a[key]) + 1e-7, (a["step"], key)
        assert abs(a["test_error"] - b["test_error"]) <= 100 / 300 + 1e-9
