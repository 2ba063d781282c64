"""``fast_path="fused"``: the fast path's closed forms through ``torch.compile`` (inductor, the
compiled path a GPU runs too; on the CPU it compiles C++) give the formula's loss, terms and
gradients. Each case compiles once (some seconds)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from labelemb.methods import LabelEmbedding
from labelemb.methods.label_embedding.loss import TERMS


@pytest.mark.parametrize(
    "options, ignored",
    [({"alpha": 0.3}, True), ({"variant": "nlp", "soft_warmup": 0, "alpha": 0.3}, False)],
    ids=["released-ignored-rows", "nlp-every-row"],
)
def test_the_fused_head_gives_the_formulas_loss_terms_and_gradients(options, ignored):
    torch.manual_seed(0)
    formula = LabelEmbedding(6, 5, fast_path=False, **options).double()
    fused = LabelEmbedding(6, 5, fast_path="fused", **options).double()
    with torch.no_grad():
        formula.heads.weight.mul_(5.0)  # confident o2: the argmax mask and the hinge are at work
    fused.load_state_dict(formula.state_dict())
    features = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 5, (11,))
    if ignored:
        target[::3] = -100
    want, got = formula(features, target), fused(features, target)
    torch.testing.assert_close(got.loss, want.loss)
    torch.testing.assert_close(got.logits, want.logits)
    for name in TERMS:
        torch.testing.assert_close(got.terms[name], want.terms[name], msg=name)
    parameters = dict(formula.named_parameters())
    expected = torch.autograd.grad(want.loss, [features, *parameters.values()], allow_unused=True)
    found = torch.autograd.grad(
        got.loss, [features, *dict(fused.named_parameters()).values()], allow_unused=True
    )
    for name, a, b in zip(["features", *parameters], found, expected):
        if b is None:
            assert a is None or not a.any(), name
        else:
            torch.testing.assert_close(a, b, msg=name)


def test_fast_path_takes_true_false_or_fused_only():
    with pytest.raises(ValueError, match="fast_path is true, false or 'fused'"):
        LabelEmbedding(4, 3, fast_path="fast")


@pytest.mark.parametrize("tags", [False, True], ids=["one-label", "tag-sets"])
def test_under_the_flop_counter_the_fused_head_runs_as_written_with_the_same_products(tags):
    # A run counts its FLOPs under FlopCounterMode, where torch.compile cannot trace.
    torch.manual_seed(0)
    written = LabelEmbedding(6, 5).double()
    fused = LabelEmbedding(6, 5, fast_path="fused").double()
    fused.load_state_dict(written.state_dict())
    features = torch.randn(11, 6, dtype=torch.float64)
    target = torch.rand(11, 5) < 0.4 if tags else torch.randint(0, 5, (11,))
    counts, losses = [], []
    for method in (written, fused):
        with FlopCounterMode(display=False) as counter:
            out = method(features, target)
            out.loss.backward()
        counts.append(counter.get_total_flops())
        losses.append(out.loss.detach())
    assert counts[0] == counts[1] > 0
    torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)
