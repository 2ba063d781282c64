"""Liger-Kernel's fused linear cross-entropy as the hard-label chunked head (labelemb.methods.liger),
run on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``) against the loss and every
gradient computed at once in float64. Triton reads the variable when Liger's kernels are defined,
at import, so each check runs in a fresh Python with it set."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

CHECK = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.nn.functional as F
    from labelemb.methods import liger

    dtype, epsilon = getattr(torch, sys.argv[1]), float(sys.argv[2])
    torch.manual_seed(0)
    n, d, m, count = 23, 6, 37, 30.0  # 37 columns: no block divides them; count: every process's rows
    h = torch.randn(n, d, dtype=torch.float64)
    weight = torch.randn(m, d, dtype=torch.float64) * 0.5
    bias = torch.randn(m, dtype=torch.float64) * 0.1
    label = torch.randint(0, m, (n,))

    def gradients(loss_of, *tensors):
        tensors = [t.detach().clone().requires_grad_() for t in tensors]
        loss = loss_of(*tensors)
        return [loss.detach(), *torch.autograd.grad(loss, tensors)]

    def reference(h, weight, bias):
        logits = h @ weight.t() + bias
        return F.cross_entropy(logits, label, reduction="sum", label_smoothing=epsilon) / count

    def kernel(h, weight, bias):
        return liger.liger_linear_loss(h, weight, bias, label, count, epsilon)

    want = gradients(reference, h, weight, bias)
    got = gradients(kernel, h.to(dtype), weight.to(dtype), bias.to(dtype))
    errors = [(g.double() - w).abs().max().item() / (1 + w.abs().max().item()) for g, w in zip(got, want)]
    print(json.dumps(errors))
    """
)


#: onehot's chunked head on the CPU as it runs on a GPU (Liger's) against its own chunked head,
#: through the method's forward: ignored rows, rows that count across Liger's chunks.
THROUGH_ONEHOT = textwrap.dedent(
    """
    import json
    import torch
    import liger_kernel.transformers.functional as functional
    from labelemb.methods import build, liger

    calls, kernel = [], functional.liger_fused_linear_cross_entropy
    functional.liger_fused_linear_cross_entropy = lambda *a, **k: calls.append(1) or kernel(*a, **k)
    torch.manual_seed(0)
    features = torch.randn(23, 6)
    target = torch.randint(0, 37, (23,))
    target[[2, 9, 10]] = -100
    method = build("onehot", in_features=6, num_classes=37, chunk_size=7)

    def step(devices):
        liger.LIGER_DEVICES = devices
        rows = features.clone().requires_grad_()
        out = method(rows, target)
        grads = torch.autograd.grad(out.loss, [rows, *method.parameters()])
        return [out.loss.detach(), out.terms["ce"], *grads], out.logits is None

    want, _ = step(frozenset())
    got, chunked = step(frozenset({"cpu"}))
    assert chunked and calls == [1]  # Liger's kernel took the step, once
    print(json.dumps([(g - w).abs().max().item() / (1 + w.abs().max().item()) for g, w in zip(got, want)]))
    """
)


def interpreted(script: str, *arguments: str) -> list[float]:
    """The last line ``script`` prints, read as JSON, run where Triton interprets its kernels."""
    if importlib.util.find_spec("liger_kernel") is None:
        pytest.fail('Liger-Kernel is missing: pip install "labelemb[liger]" (in the README\'s set-up)')
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-c", script, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def relative_errors(dtype: str, epsilon: float) -> list[float]:
    """Loss, then the gradients of h, W and b: Liger's against float64's, max relative error."""
    return interpreted(CHECK, dtype, str(epsilon))


@pytest.mark.parametrize("epsilon", [0.0, 0.2])
def test_liger_head_gives_the_loss_and_every_gradient_in_float32(epsilon):
    errors = relative_errors("float32", epsilon)
    assert max(errors) < 1e-5, errors


def test_liger_head_in_bfloat16_stays_within_bfloat16s_rounding():
    # bf16 products (8 bits of mantissa), float32 softmaxes: each figure to about 1 %.
    errors = relative_errors("bfloat16", 0.1)
    assert max(errors) < 2e-2, errors


def test_onehots_chunked_head_on_liger_gives_its_own_loss_term_and_gradients():
    # loss, the ce term, then the gradients of the features, W and b
    errors = interpreted(THROUGH_ONEHOT)
    assert max(errors) < 1e-5, errors


def test_liger_head_says_how_to_install_it_where_it_is_missing(monkeypatch):
    from labelemb.methods import liger

    monkeypatch.setattr(liger, "liger_loss_function", lambda: None)
    import torch

    assert not liger.runs_on_liger(torch.device("cuda"))
    with pytest.raises(RuntimeError, match=r'pip install "labelemb\[liger\]"'):
        h, weight, bias, label = torch.zeros(1, 2), torch.zeros(3, 2), torch.zeros(3), torch.zeros(1).long()
        liger.liger_linear_loss(h, weight, bias, label, 1, 0.0)
