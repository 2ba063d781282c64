"""PerExampleState's opening of the loss (issue 61): a per-example method (lwr, pskd) writes only
``per_example_loss``; the mixin's ``compute_loss`` computes the log-softmax and its cross-entropy,
checks ``index`` and, without it in evaluation, gives the plain cross-entropy."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from labelemb.methods import LinearOutputMethod, MethodOutput
from labelemb.methods.base import Rows
from labelemb.methods.per_example import PerExampleState

D, M, N_EXAMPLES = 4, 3, 6


class Remembering(PerExampleState, LinearOutputMethod):
    """Twice the cross-entropy on examples with rows, recording what its loss was handed."""

    def __init__(self, in_features: int, num_classes: int, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        self.init_per_example(N_EXAMPLES, num_classes)
        self.handed: dict[str, Tensor] = {}

    def per_example_loss(
        self, logits: Tensor, log_p: Tensor, ce: Tensor, rows: Rows, index: Tensor
    ) -> MethodOutput:
        self.handed = {"logits": logits, "log_p": log_p, "ce": ce, "index": index}
        return MethodOutput(2 * ce, logits, {"ce": ce})


def batch() -> tuple[Remembering, Tensor, Tensor]:
    torch.manual_seed(0)
    return Remembering(D, M), torch.randn(5, D), torch.tensor([0, 1, 2, 1, 0])


def test_the_method_s_loss_gets_the_log_softmax_its_cross_entropy_and_checked_positions():
    method, features, target = batch()
    out = method(features, target, index=torch.tensor([5, 0, 3, 1, 2], dtype=torch.int32))
    logits = method.logits(features)
    expected_ce = F.cross_entropy(logits, target)
    torch.testing.assert_close(method.handed["log_p"], F.log_softmax(logits, dim=-1))
    torch.testing.assert_close(method.handed["ce"], expected_ce)
    assert method.handed["index"].dtype == torch.int64
    assert method.handed["index"].tolist() == [5, 0, 3, 1, 2]
    torch.testing.assert_close(out.loss, 2 * expected_ce)


def test_evaluation_without_positions_is_the_plain_cross_entropy():
    method, features, target = batch()
    method.eval()
    out = method(features, target)
    assert method.handed == {}  # the method's own loss is not called
    torch.testing.assert_close(out.loss, F.cross_entropy(method.logits(features), target))
    assert set(out.terms) == {"ce"}


def test_training_without_positions_is_refused_in_one_line():
    method, features, target = batch()
    with pytest.raises(ValueError, match="Remembering needs index= in training"):
        method(features, target)
