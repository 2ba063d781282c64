"""The method base split by concern (issue 71): the abilities a method opts in to with a mixin and
a trainer asks for with ``isinstance``, the base of the methods that only change the target, and
the shared options that each method's signature lists."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from labelemb import methods
from labelemb.methods.abilities import Chunked, EpochState, MultiHot, ReadsDev, Stackable
from labelemb.methods.base import LinearOutputMethod, Method, gold
from labelemb.methods.targets import TargetMethod, weighted_sum

ABILITIES = {
    Stackable: "stackable",
    Chunked: "chunkable",
    ReadsDev: "reads_dev",
    EpochState: "epoch_state",
    MultiHot: "multi_hot",
}


def test_every_method_s_abilities_are_its_mixins_and_its_attributes():
    for name in methods.available():
        cls = methods.method_class(name)
        for ability, trait in ABILITIES.items():
            assert issubclass(cls, ability) == getattr(cls, trait), (name, trait)
    assert issubclass(methods.OneHot, Stackable) and issubclass(methods.OneHot, Chunked)
    assert not issubclass(methods.OneHot, ReadsDev) and issubclass(methods.method_class("adafocal"), ReadsDev)


def test_the_trainer_skips_no_epoch_state_a_method_keeps():
    # The trainer calls on_epoch_end only where the method says EpochState: every method whose
    # class writes its own on_epoch_end must say so, or its state would never be swapped.
    kept = {n for n in methods.available() if methods.method_class(n).on_epoch_end is not Method.on_epoch_end}
    assert kept == {n for n in methods.available() if issubclass(methods.method_class(n), EpochState)}
    assert kept >= {"ols", "lwr", "pskd", "maxsup"} and not issubclass(methods.OneHot, EpochState)

    class Counting(EpochState, LinearOutputMethod):
        def on_epoch_end(self) -> None:
            pass

    class NotCounting(Counting):  # opted out on purpose
        epoch_state = False

    assert isinstance(Counting(4, 3), EpochState) and not isinstance(NotCounting(4, 3), EpochState)


def test_a_hook_without_its_mixin_is_refused_when_the_class_is_written():
    # The trainer calls on_epoch_end of an EpochState only: without the mixin it would never run.
    with pytest.raises(TypeError, match="writes on_epoch_end but is no EpochState"):

        class _Forgot(LinearOutputMethod):
            def on_epoch_end(self) -> None:
                pass


class _ByAttribute(LinearOutputMethod):
    """An attribute set to True without the mixin: it grants nothing."""

    stackable = True


class _OptedOut(methods.OneHot):
    """A variant of a stackable method that is not."""

    stackable = False


def test_only_the_mixin_grants_an_ability_and_a_subclass_can_opt_out():
    assert not isinstance(_ByAttribute(4, 3), Stackable) and not issubclass(_ByAttribute, Stackable)
    assert not isinstance(_OptedOut(4, 3), Stackable) and issubclass(_OptedOut, Chunked)
    assert isinstance(methods.OneHot(4, 3), Stackable)
    assert not issubclass(LinearOutputMethod, Stackable)
    # A method class is not an ability: a stackable class is no subclass of another.
    assert not issubclass(methods.method_class("label_smoothing"), methods.OneHot)


class _Smoothed(Stackable, Chunked, TargetMethod):
    """Label smoothing written on the template: its terms per row and their weights."""

    def __init__(self, in_features: int, num_classes: int, *, epsilon: float = 0.1, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        self.epsilon = epsilon

    def row_values(self, logits: Tensor, label: Tensor) -> dict[str, Tensor]:
        log_p = F.log_softmax(logits, dim=-1)
        return {"ce": -gold(log_p, label), "uniform": -log_p.mean(-1), "logged": log_p.exp().max(-1).values}

    def row_terms(self) -> dict[str, float]:
        return {"ce": 1.0 - self.epsilon, "uniform": self.epsilon, "logged": 0.0}


def test_a_target_method_is_its_terms_mean_weighted_over_the_rows_that_count():
    torch.manual_seed(0)
    method = _Smoothed(4, 5, epsilon=0.2)
    features, target = torch.randn(6, 4), torch.tensor([0, 1, -100, 3, 4, 2])
    out = method(features, target)
    kept = target != -100
    logits = method.output(features[kept])
    want = F.cross_entropy(logits, target[kept], label_smoothing=0.2)
    torch.testing.assert_close(out.loss, want)
    assert set(out.terms) == {"ce", "uniform", "logged"} and not out.terms["ce"].requires_grad
    # The weight-0 term is logged only: the loss is the same without it.
    torch.testing.assert_close(out.loss, 0.8 * out.terms["ce"] + 0.2 * out.terms["uniform"])


def test_the_weighted_sum_adds_a_weight_of_one_as_it_is_and_leaves_zero_out():
    ce, other = torch.tensor(2.0), torch.tensor(float("inf"))
    assert weighted_sum({"ce": ce, "other": other}, {"ce": 1.0, "other": 0.0}) is ce
    with pytest.raises(ValueError, match="nonzero weight"):
        weighted_sum({"ce": ce}, {"ce": 0.0})


def test_the_signature_lists_the_shared_options_of_a_mixed_in_method():
    parameters = inspect.signature(_Smoothed).parameters
    assert list(parameters) == [
        "in_features",
        "num_classes",
        "epsilon",
        "init_std",
        "chunk_size",
        "ignore_index",
    ]
    assert typing.get_type_hints(_Smoothed.__init__)["chunk_size"] == (int | None)
    assert list(inspect.signature(_ByAttribute).parameters)[-2:] == ["init_std", "ignore_index"]
    assert "chunk_size" in methods.options("onehot") and "chunk_size" not in methods.options("ols")
