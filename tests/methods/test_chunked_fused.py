"""The GPU path of the chunked heads: each chunk's logits, per-row terms and logit gradient through
``torch.compile`` (:func:`labelemb.methods.chunked.fused_chunk_terms_and_grad`), run here on the
CPU through inductor's compiled path, against the same head computed at once (float32: a chunked
head accumulates in float32 whatever its inputs)."""

from __future__ import annotations

import pytest
import torch

from labelemb.methods import build
from labelemb.methods import chunked as chunked_module

D, M, N = 6, 37, 23  # V = 37 columns: no block size divides it; chunks of 7 rows: 7, 7, 7, 2


@pytest.fixture
def fused_on_the_cpu(monkeypatch):
    monkeypatch.setattr(chunked_module, "FUSED_DEVICES", frozenset({"cpu"}))


@pytest.mark.parametrize("name, options", [("onehot", {}), ("label_smoothing", {"epsilon": 0.2})])
def test_fused_chunks_give_the_loss_terms_and_gradients_of_the_head_at_once(fused_on_the_cpu, name, options):
    torch.manual_seed(0)
    whole = build(name, in_features=D, num_classes=M, chunk_size=10**6, **options)
    fused = build(name, in_features=D, num_classes=M, chunk_size=7, **options)
    fused.load_state_dict(whole.state_dict())
    features = torch.randn(N, D)
    target = torch.randint(0, M, (N,))
    target[[2, 9, 10]] = -100  # ignored rows, one across a chunk boundary
    outs, grads = [], []
    for method in (fused, whole):
        rows = features.clone().requires_grad_()
        out = method(rows, target)
        outs.append(out)
        grads.append(torch.autograd.grad(out.loss, [rows, *method.parameters()]))
    assert outs[0].logits is None  # chunked: the logits never exist for every row at once
    torch.testing.assert_close(outs[0].loss, outs[1].loss)
    for key in outs[1].terms:
        torch.testing.assert_close(outs[0].terms[key], outs[1].terms[key], msg=key)
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want)


def test_fused_chunks_in_bfloat16_stay_within_bfloat16s_rounding(fused_on_the_cpu):
    torch.manual_seed(0)
    whole = build("onehot", in_features=D, num_classes=M, chunk_size=10**6)
    fused = build("onehot", in_features=D, num_classes=M, chunk_size=7).to(torch.bfloat16)
    fused.load_state_dict(whole.state_dict())
    features = torch.randn(N, D)
    target = torch.randint(0, M, (N,))
    want = whole(features, target)
    got = fused(features.to(torch.bfloat16), target)
    # bf16 products (8 bits of mantissa) and float32 softmaxes: the loss to about 1 %.
    torch.testing.assert_close(got.loss.float(), want.loss, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "options",
    [{"alpha": 0.3}, {"variant": "nlp", "soft_warmup": 0, "alpha": 0.3, "compressed_dim": 3}],
    ids=["released", "nlp-compressed"],
)
def test_fused_label_embedding_chunks_give_the_head_at_once(fused_on_the_cpu, options):
    """label_embedding's chunked head with each chunk's rows through the compiled function."""
    torch.manual_seed(0)
    whole = build("label_embedding", in_features=D, num_classes=M, chunk_size=10**6, **options)
    with torch.no_grad():
        whole.heads.weight.mul_(4.0)  # confident o2: the mask and the penalty take part
    fused = build("label_embedding", in_features=D, num_classes=M, chunk_size=7, **options)
    fused.load_state_dict(whole.state_dict())
    features = torch.randn(N, D)
    target = torch.randint(0, 5, (N,)) * 7 % M  # few distinct labels, shared across chunks
    target[[2, 9, 10]] = -100
    outs, grads = [], []
    for method in (fused, whole):
        rows = features.clone().requires_grad_()
        out = method(rows, target)
        outs.append(out)
        grads.append(torch.autograd.grad(out.loss, [rows, *method.parameters()], allow_unused=True))
    assert outs[0].logits is None
    torch.testing.assert_close(outs[0].loss, outs[1].loss, rtol=1e-5, atol=1e-6)
    for key in outs[1].terms:
        torch.testing.assert_close(outs[0].terms[key], outs[1].terms[key], rtol=1e-5, atol=1e-6, msg=key)
    for got, want in zip(*grads):
        if want is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
