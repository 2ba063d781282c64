"""The method contract as a template: ``Method.forward`` checks the batch, runs the head, calls the
method's loss and leaves the rows that do not count out of it, so a method writes its loss alone.

A tiny method written only with the hooks (``compute_loss``, ``logits``; ``row_loss`` and
``row_terms`` for the chunked head) is held against the same loss computed by hand. Also: the
shared options, and which methods serve which kind of rows.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from labelemb import methods
from labelemb.methods import LabelRangeError, LinearOutputMethod, Method, MethodOutput
from labelemb.methods.abilities import Chunked
from labelemb.methods.base import Rows, gold

D, M = 4, 3


class TinyCrossEntropy(Method):
    """Cross-entropy of a linear head, written with nothing but the hooks."""

    def __init__(self, in_features: int, num_classes: int, *, scale: float = 1.0, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        self.scale = scale
        self.output = self.linear_head(num_classes)

    def logits(self, features: Tensor) -> Tensor:
        return self.output(features)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        nll = torch.logsumexp(logits, dim=-1) - gold(logits, rows.label)
        loss = self.scale * rows.mean(nll)
        return MethodOutput(loss, logits, {"nll": loss})


class TinyChunked(Chunked, LinearOutputMethod):
    """The same loss with a chunked head: its per-row loss and gradient in the logits."""

    def __init__(self, in_features: int, num_classes: int, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)

    def compute_loss(
        self, logits: Tensor, rows: Rows, features: Tensor, index: Tensor | None
    ) -> MethodOutput:
        loss = rows.mean(-gold(F.log_softmax(logits, dim=-1), rows.label))
        return MethodOutput(loss, logits, {"nll": loss})

    def row_loss(self, logits: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        grad = log_p.exp()
        grad[torch.arange(len(label)), label] -= 1.0
        return -log_p.gather(1, label[:, None]), grad

    def row_terms(self) -> dict[str, float]:
        return {"nll": 1.0}


def tiny(**options: Any) -> TinyCrossEntropy:
    torch.manual_seed(0)
    return TinyCrossEntropy(D, M, **options)


def by_hand(method: TinyCrossEntropy, features: Tensor, target: Tensor, keep: Tensor) -> tuple[Tensor, ...]:
    """The loss over the rows ``keep`` and its gradients in W, b and the features, by plain autograd."""
    weight = method.output.weight.detach().clone().requires_grad_()
    bias = method.output.bias.detach().clone().requires_grad_()
    h = features.detach().clone().requires_grad_()
    loss = method.scale * F.cross_entropy(F.linear(h[keep], weight, bias), target[keep])
    loss.backward()
    return loss.detach(), weight.grad, bias.grad, h.grad


def step(method: Method, features: Tensor, target: Tensor) -> tuple[MethodOutput, Tensor]:
    """A training step; returns its output and the features' gradient."""
    h = features.clone().requires_grad_()
    method.zero_grad()
    out = method(h, target)
    out.loss.backward()
    return out, h.grad


def batch(n: int = 8) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, D, generator=generator), torch.randint(0, M, (n,), generator=generator)


def test_the_hooks_alone_give_the_loss_the_logits_and_detached_terms():
    method = tiny(scale=2.0)
    features, target = batch()
    out, grad_h = step(method, features, target)
    loss, grad_w, grad_b, want_h = by_hand(
        method, features, target, torch.ones(len(target), dtype=torch.bool)
    )
    torch.testing.assert_close(out.loss.detach(), loss)
    torch.testing.assert_close(method.output.weight.grad, grad_w)
    torch.testing.assert_close(method.output.bias.grad, grad_b)
    torch.testing.assert_close(grad_h, want_h)
    torch.testing.assert_close(out.logits, method.logits(features))
    assert list(out.terms) == ["nll"] and not out.terms["nll"].requires_grad
    torch.testing.assert_close(out.terms["nll"], loss)


def test_the_base_checks_the_inputs():
    method = tiny()
    features, target = batch()
    with pytest.raises(ValueError, match=r"expects features of shape \(N, 4\)"):
        method(features[:, :2], target)
    with pytest.raises(ValueError, match="target must have shape"):
        method(features, target[:3])
    with pytest.raises(TypeError, match="integer class indices"):
        method(features, target.float())
    with pytest.raises(LabelRangeError, match=r"labels \[3\] are outside \[0, 3\)"):
        method(features, torch.tensor([0, 1, 2, 3, 0, 1, 2, 0]))


@pytest.mark.parametrize("ignore_index", [-100, -1])
def test_ignored_rows_count_for_nothing(ignore_index):
    method = tiny(ignore_index=ignore_index)
    features, target = batch()
    target[[1, 4, 5]] = ignore_index
    keep = target != ignore_index
    out, grad_h = step(method, features, target)
    loss, grad_w, grad_b, want_h = by_hand(method, features, target, keep)
    torch.testing.assert_close(out.loss.detach(), loss)
    torch.testing.assert_close(method.output.weight.grad, grad_w)
    torch.testing.assert_close(method.output.bias.grad, grad_b)
    torch.testing.assert_close(grad_h, want_h)
    assert (grad_h[~keep] == 0).all()


def test_a_row_that_is_not_finite_makes_the_loss_nan_but_reaches_no_parameter():
    method = tiny()
    features, target = batch()
    features[2, 0] = float("nan")  # counts: the loss must say so
    features[6, 1] = float("inf")
    target[6] = -100  # ignored anyway: the loss stays finite for it
    keep = torch.ones(len(target), dtype=torch.bool)
    keep[[2, 6]] = False
    out, grad_h = step(method, features, target)
    loss, grad_w, grad_b, want_h = by_hand(method, features, target, keep)
    assert torch.isnan(out.loss)
    torch.testing.assert_close(out.terms["nll"], loss)  # the terms are over the rows that count
    torch.testing.assert_close(method.output.weight.grad, grad_w)  # finite: the bad rows left out
    torch.testing.assert_close(method.output.bias.grad, grad_b)
    assert torch.isnan(grad_h[2]).all() and (grad_h[6] == 0).all()
    torch.testing.assert_close(grad_h[keep], want_h[keep])
    assert torch.isnan(out.logits[[2, 6]]).all() and torch.isfinite(out.logits[keep]).all()

    target[2] = -100  # no bad row counts now: a finite loss over the others
    out, _ = step(method, features, target)
    torch.testing.assert_close(out.loss.detach(), loss)


def test_an_empty_batch_gives_a_zero_loss_on_the_graph():
    method = tiny()
    out, grad_h = step(method, torch.zeros(0, D), torch.zeros(0, dtype=torch.long))
    assert out.loss.item() == 0 and out.logits.shape == (0, M) and grad_h.shape == (0, D)
    assert (method.output.weight.grad == 0).all()


def test_the_shared_options_are_declared_once_and_listed_in_the_signature():
    parameters = inspect.signature(TinyCrossEntropy).parameters
    assert list(parameters) == ["in_features", "num_classes", "scale", "init_std", "ignore_index"]
    assert parameters["init_std"].default is None and parameters["ignore_index"].default == -100
    hints = typing.get_type_hints(TinyCrossEntropy.__init__)
    assert hints["init_std"] == (float | None) and hints["ignore_index"] is int
    assert list(inspect.signature(TinyChunked).parameters)[-3:] == ["init_std", "chunk_size", "ignore_index"]
    with pytest.raises(TypeError, match="no chunked head"):
        TinyCrossEntropy(D, M, chunk_size=4)
    with pytest.raises(TypeError, match="inherits a constructor without chunk_size"):

        class _Forgot(Chunked, LinearOutputMethod):
            pass

    with pytest.raises(ValueError, match="chunk_size"):
        TinyChunked(D, M, chunk_size=0)
    method = tiny(init_std=0.1)
    assert method.output.weight.abs().max() <= 0.2 and (method.output.bias == 0).all()


def test_a_chunked_head_from_the_row_loss_gives_the_loss_at_once():
    torch.manual_seed(0)
    at_once = TinyChunked(D, M)
    chunked = TinyChunked(D, M, chunk_size=3)
    chunked.load_state_dict(at_once.state_dict())
    features, target = batch(10)
    target[[0, 7]] = -100
    want, want_h = step(at_once, features, target)
    got, got_h = step(chunked, features, target)
    assert got.logits is None and want.logits is not None
    torch.testing.assert_close(got.loss, want.loss)
    torch.testing.assert_close(got.terms["nll"], want.terms["nll"])
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(chunked.output.weight.grad, at_once.output.weight.grad)
    torch.testing.assert_close(chunked.output.bias.grad, at_once.output.bias.grad)


def test_which_methods_serve_token_rows_and_why_the_others_do_not():
    assert methods.serving("token") == [
        "acls",
        "bootstrap_hard",
        "bootstrap_soft",
        "confidence_penalty",
        "dual_focal",
        "flsd53",
        "focal",
        "gce",
        "label_embedding",
        "label_relaxation",
        "label_smoothing",
        "logitnorm",
        "maxsup",
        "mbls",
        "mdca",
        "nce_rce",
        "nls",
        "onehot",
        "sce",
        "tfkd_reg",
        "zipf_ls",
    ]
    # asl is a loss over tag sets alone
    assert methods.serving("class") == [name for name in methods.available() if name != "asl"]
    assert methods.why_not_serving("onehot", "token") is None
    assert methods.why_not_serving("lwr", "class") is None
    assert "soft label per training example" in methods.why_not_serving("lwr", "token")
    assert "V x V" in methods.why_not_serving("ols", "token")
    # a preset is its class
    assert methods.why_not_serving("lwal10_rpl", "token") == methods.why_not_serving("lwal", "token")
    for name in methods.available():
        cls = methods.method_class(name)
        assert set(cls.cannot_serve) == {"class", "token", "tags"} - cls.serves, name
    with pytest.raises(ValueError, match="unknown kind of rows 'tokens'"):
        methods.serving("tokens")
    with pytest.raises(ValueError, match="unknown method"):
        methods.why_not_serving("onehotx", "token")


@pytest.mark.parametrize("name", ["onehot", "label_smoothing", "label_embedding"])
def test_an_ignore_index_that_is_a_class_leaves_its_rows_out(name):
    """ignore_index=0 on a clean batch: the rows labelled 0 must not count, as they do not when a
    bad row sends the batch the general way."""
    torch.manual_seed(0)
    features, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    ignoring = methods.build(name, in_features=4, num_classes=3, ignore_index=0)
    kept = methods.build(name, in_features=4, num_classes=3)
    kept.load_state_dict(ignoring.state_dict())
    counted = target != 0
    expected = kept(features[counted], target[counted]).loss
    assert torch.allclose(ignoring(features, target).loss, expected, atol=1e-6)
