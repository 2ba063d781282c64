"""labelemb.integrations.huggingface: any method as a Hugging Face Trainer's compute_loss_func.

A tiny BERT (tests/helpers/huggingface_models.py: one layer, sixteen wide, built from its config: nothing
is downloaded) reads 32 random padded sequences. Through the real ``Trainer``, one optimiser step of
1 x 32 examples and one of 4 x 8 (micro-batches of unequal numbers of counted tokens) must give every
parameter, the backbone's and the method's, the same gradient; the loss is checked against a hand
computation; the callback must run the epoch-level update once per epoch; the Trainer's own
optimiser must train the method's parameters; and predictions must be the method's logits.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path

import pytest

if importlib.util.find_spec("transformers") is None:  # fail, never skip: name what to install
    pytest.fail('transformers is missing: pip install -e ".[examples]"', pytrace=False)

import torch
import torch.nn.functional as F
from helpers.dev_checks import DeafMethod, RecordingMethod, dev_events, kinds, register_recorders
from helpers.huggingface_models import (
    NUM_CLASSES,
    NUM_EXAMPLES,
    Sequences,
    TinyBertWithMethod,
    build_tiny_bert,
    trainer_for,
)
from torch import Tensor
from transformers import TrainerCallback

import labelemb
from labelemb.integrations.huggingface import EpochEndCallback, LabelembLoss, LabelembOutput


class CaptureGradients(TrainerCallback):
    """The gradients the optimiser is about to apply (after the last micro-batch of the step)."""

    def __init__(self) -> None:
        self.grads: dict[str, Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {
            name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None
        }


def step_gradients(
    model: TinyBertWithMethod, batch: int, accumulate: int, tmp_path: Path, mean_of_means: bool = False
) -> tuple[dict[str, Tensor], list[int]]:
    """Every parameter's gradient in the first optimiser step of a real Trainer run, and the
    number of counted labels of each of its micro-batches."""
    capture = CaptureGradients()
    trainer = trainer_for(
        model,
        tmp_path / f"{batch}x{accumulate}",
        callbacks=[capture],
        mean_of_means=mean_of_means,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulate,
        max_steps=1,
        max_grad_norm=0.0,  # no clipping: the raw accumulated gradients
    )
    trainer.train()
    return capture.grads, trainer.compute_loss_func.counted


CLASS_METHODS = {
    "onehot": {},
    "lwr": {"num_examples": NUM_EXAMPLES, "epochs": 2},  # with each example's index
    "label_embedding_nlp": {"variant": "nlp"},
    # E learns from the step's rows o2 gets right, averaged over all micro-batches' count of them.
    "label_embedding": {},
    "label_embedding_paper": {"variant": "paper"},
    "label_embedding_compressed": {"compressed_dim": 3},
    # alpha under o2's gold probability at the start (1 / 5 classes): the penalty, a sum over the
    # step's rows, takes part.
    "label_embedding_penalty": {"alpha": 0.05},
    # The peers of issue 59 whose loss is a mean of per-row terms.
    "maxsup": {"epochs": 2},
    "acls": {"margin": 0.0},  # every hinge at work on the tiny model's small logits
    "dual_focal": {},
    # Inverse focal at the start: the Trainer's epoch-end callback reads the dev predictions.
    "adafocal": {"gamma_initial": -1.0},
}
TOKEN_METHODS = {
    "label_smoothing": {},
    "label_embedding_nlp": {"variant": "nlp"},
    "label_embedding": {},
}


def _assert_same_gradients(name: str, tokens: bool, tmp_path: Path) -> list[int]:
    """Compares the gradients of 1 x 32 and 4 x 8; returns the counted labels of the 4 micro-batches."""
    # In float64: float32's rounding of sums taken in another order (1e-7 of a gradient near 1) would
    # leave 1e-6 too little room on another machine's kernels.
    model = build_tiny_bert(name, (TOKEN_METHODS if tokens else CLASS_METHODS)[name], tokens, torch.float64)
    whole, _ = step_gradients(copy.deepcopy(model), 32, 1, tmp_path)
    parts, counted = step_gradients(copy.deepcopy(model), 8, 4, tmp_path)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(whole) == set(parts) == names, "every parameter, backbone's and method's, gets a gradient"
    assert any(n.startswith("head.") for n in names) and any(n.startswith("bert.") for n in names)
    for n in sorted(names):
        assert whole[n].abs().max() > 0, f"{n} got no gradient"
        torch.testing.assert_close(parts[n], whole[n], rtol=0, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")
    return counted


@pytest.mark.parametrize("name", list(CLASS_METHODS))
def test_accumulated_micro_batches_give_the_whole_batchs_gradients(name: str, tmp_path: Path) -> None:
    _assert_same_gradients(name, tokens=False, tmp_path=tmp_path)


@pytest.mark.parametrize("name", list(TOKEN_METHODS))
def test_padded_token_targets_accumulate_to_the_whole_batchs_gradients(name: str, tmp_path: Path) -> None:
    counted = _assert_same_gradients(name, tokens=True, tmp_path=tmp_path)
    assert len(counted) == 4 and len(set(counted)) > 1, counted  # micro-batches of unequal token counts


def test_without_num_items_accumulation_would_differ(tmp_path: Path) -> None:
    """The check above can fail: the mean of micro-batch means (a compute_loss that drops
    num_items_in_batch) is not the whole batch's mean when micro-batches count different tokens."""
    model = build_tiny_bert("onehot", {}, tokens=True)
    whole, _ = step_gradients(copy.deepcopy(model), 32, 1, tmp_path)
    parts, counted = step_gradients(copy.deepcopy(model), 8, 4, tmp_path / "means", mean_of_means=True)
    assert len(set(counted)) > 1, counted
    assert max((parts[n] - whole[n]).abs().max().item() for n in whole) > 1e-4


def test_loss_is_the_sum_over_counted_rows_over_num_items() -> None:
    torch.manual_seed(0)
    method = labelemb.methods.build("onehot", in_features=3, num_classes=4)
    h = torch.randn(2, 3, 3)
    labels = torch.tensor([[1, 3, -100], [0, -100, -100]])
    loss = LabelembLoss(method)

    w, b = method.output.weight.detach(), method.output.bias.detach()
    rows = [(0, 0), (0, 1), (1, 0)]
    terms = []
    for i, t in rows:
        z = h[i, t] @ w.T + b
        terms.append(torch.logsumexp(z, 0) - z[labels[i, t]])  # -log softmax(z)[y]
    by_hand = sum(terms)

    value = loss(LabelembOutput(features=h), labels, num_items_in_batch=torch.tensor(10))
    torch.testing.assert_close(value, by_hand / 10, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss({"features": h}, labels, num_items_in_batch=10), by_hand / 10)
    # Without num_items_in_batch: the method's own mean over the 3 counted rows.
    torch.testing.assert_close(loss(LabelembOutput(features=h), labels), by_hand / 3, rtol=0, atol=1e-6)
    # A step whose every label is padding: zero, not 0 / 0.
    empty = loss(LabelembOutput(features=h), torch.full_like(labels, -100), num_items_in_batch=0)
    assert empty.item() == 0.0


def test_loss_with_label_smoothing_by_hand() -> None:
    torch.manual_seed(1)
    method = labelemb.methods.build("label_smoothing", in_features=4, num_classes=3)
    eps = method.epsilon
    h, y = torch.randn(5, 4), torch.tensor([0, 2, -100, 1, 1])
    log_p = F.log_softmax(method.logits(h).detach(), -1)[y != -100]
    gold = -log_p.gather(1, y[y != -100, None]).squeeze(1)
    per_row = (1 - eps) * gold + eps * -log_p.mean(-1)
    value = LabelembLoss(method)(LabelembOutput(features=h), y, num_items_in_batch=torch.tensor(7))
    torch.testing.assert_close(value, per_row.sum() / 7, rtol=0, atol=1e-6)


def test_callback_runs_the_epoch_end_update_once_per_epoch(tmp_path: Path) -> None:
    model = build_tiny_bert("ols", {}, tokens=False)
    head = model.head
    calls: list[Tensor] = []
    update = head.on_epoch_end

    def counted_update() -> None:
        update()
        calls.append(head.soft_labels.clone())

    head.on_epoch_end = counted_update
    start = head.soft_labels.clone()
    assert torch.equal(start, torch.zeros(NUM_CLASSES, NUM_CLASSES))  # OLS starts from zero soft labels
    trainer = trainer_for(
        model, tmp_path, per_device_train_batch_size=8, num_train_epochs=2, learning_rate=1e-2
    )
    trainer.train()

    assert len(calls) == 2 and trainer.state.epoch == 2
    for soft in calls:  # each row a distribution: the class's mean prediction, or uniform if never right
        assert not torch.equal(soft, start)
        torch.testing.assert_close(soft.sum(-1), torch.ones(NUM_CLASSES))
    assert not torch.allclose(calls[-1], torch.full_like(start, 1 / NUM_CLASSES))  # the epoch's predictions
    assert int(head.cnt.sum()) == 0  # the statistics were reset at the epoch's end


def test_trainers_own_optimiser_trains_the_method_and_predicts_with_its_logits(tmp_path: Path) -> None:
    model = build_tiny_bert("label_embedding", {}, tokens=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = trainer_for(
        model,
        tmp_path,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        max_steps=6,
        learning_rate=1e-2,
    )
    trainer.train()

    for n, p in model.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} did not change"
    assert {"head.embedding", "head.heads.weight"} <= set(before)

    data = Sequences(tokens=False)
    predictions = trainer.predict(data)
    model.eval()
    with torch.no_grad():
        expected = model.head.logits(model(data.ids, data.mask).features)
    assert predictions.predictions.shape == (NUM_EXAMPLES, NUM_CLASSES)
    torch.testing.assert_close(torch.as_tensor(predictions.predictions), expected, rtol=1e-5, atol=1e-5)
    assert predictions.metrics["test_loss"] > 0


def test_refusals_name_the_fix(tmp_path: Path) -> None:
    lwr = labelemb.methods.build("lwr", in_features=3, num_classes=4, num_examples=8, epochs=2)
    h, y = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="index"):
        LabelembLoss(lwr)(LabelembOutput(features=h), y, num_items_in_batch=2)
    LabelembLoss(lwr)(LabelembOutput(features=h, index=torch.tensor([3, 5])), y, num_items_in_batch=2)
    assert lwr.recorded_epoch.tolist() == [-1, -1, -1, 0, -1, 0, -1, -1]  # recorded at the examples' index
    with pytest.raises(ValueError, match="ignore_index=-100"):
        LabelembLoss(labelemb.methods.build("onehot", in_features=3, num_classes=4, ignore_index=-1))
    ols = labelemb.methods.build("ols", in_features=3, num_classes=4)
    with pytest.raises(ValueError, match="token targets"):
        LabelembLoss(ols)(LabelembOutput(features=torch.randn(2, 5, 3)), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="no 'features'"):
        LabelembLoss(ols)(LabelembOutput(logits=torch.randn(2, 4)), y)
    with pytest.raises(ValueError, match="label_names"):
        LabelembLoss(ols)(LabelembOutput(features=h), None)

    # A method outside the model, so outside the Trainer's optimiser, is refused at the start.
    model = build_tiny_bert("onehot", {}, tokens=False)
    stray = labelemb.methods.build("onehot", in_features=16, num_classes=NUM_CLASSES)
    trainer = trainer_for(model, tmp_path, per_device_train_batch_size=8, max_steps=1)
    trainer.callback_handler.add_callback(EpochEndCallback(stray))
    with pytest.raises(ValueError, match="submodule"):
        trainer.train()


class CaptureSteps(TrainerCallback):
    """Each optimiser step's gradients and the head's count of updates, as the optimiser is about to step."""

    def __init__(self) -> None:
        self.steps: list[tuple[dict[str, Tensor], int]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        self.steps.append((grads, int(model.head.num_updates)))


@pytest.mark.parametrize(
    ("tokens", "batch", "accumulate"),
    [(False, 8, 4), (False, 4, 8), (True, 8, 4)],
    ids=["classes-8x4", "classes-4x8", "tokens-8x4"],
)
def test_nlp_warm_up_counts_optimiser_steps(
    tokens: bool, batch: int, accumulate: int, tmp_path: Path
) -> None:
    """label_embedding's nlp variant with soft_warmup=2: the soft term starts in the third optimiser
    step whether a step is one batch of 32 or 32 / batch micro-batches, so each of three steps gets
    the same gradients (counting micro-batches switched it on within the first step)."""
    model = build_tiny_bert("label_embedding", {"variant": "nlp", "soft_warmup": 2}, tokens, torch.float64)
    runs = []
    for size, parts in ((32, 1), (batch, accumulate)):
        capture = CaptureSteps()
        trainer = trainer_for(
            copy.deepcopy(model),
            tmp_path / f"{size}x{parts}",
            callbacks=[capture],
            per_device_train_batch_size=size,
            gradient_accumulation_steps=parts,
            max_steps=3,
            optim="sgd",  # the steps follow the gradients (Adam would magnify rounding near zero)
            learning_rate=0.5,
            max_grad_norm=0.0,
        )
        trainer.train()
        runs.append(capture.steps)
    whole, micro = runs
    assert [updates for _, updates in whole] == [updates for _, updates in micro] == [1, 2, 3]
    for step, ((expected, _), (got, _)) in enumerate(zip(whole, micro)):
        assert set(got) == set(expected) and "head.expand.weight" in got
        for name, grad in expected.items():
            message = lambda m, n=name, s=step: f"step {s}, {n}: {m}"  # noqa: E731
            torch.testing.assert_close(got[name], grad, rtol=0, atol=1e-6, msg=message)


@pytest.mark.parametrize("name", ["lwal", "lwal10", "lwal10_rpl", "mdca"])
def test_batch_wide_methods_are_not_exact_under_accumulation_and_say_so(name: str, tmp_path: Path) -> None:
    """lwal's label vectors are each micro-batch's class means, mdca's term each micro-batch's
    statistic: EpochEndCallback warns, in one line, and the gradients do differ from one batch's; a
    method accumulation makes exact, or lwal without accumulation, gets no warning."""
    method = labelemb.methods.method_class(name).name  # a preset warns under its method's name
    model = build_tiny_bert(name, {}, tokens=False, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*gradient accumulation.*")
        whole, _ = step_gradients(copy.deepcopy(model), 32, 1, tmp_path)
        step_gradients(build_tiny_bert("ols", {}, tokens=False), 8, 4, tmp_path)
    with pytest.warns(
        UserWarning, match=rf"^{method} under gradient accumulation \(4 micro-batches a step\)"
    ) as caught:
        parts, _ = step_gradients(copy.deepcopy(model), 8, 4, tmp_path)
    assert ["\n" in str(w.message) for w in caught if method in str(w.message)] == [False]
    assert max((parts[n] - grad).abs().max() / grad.abs().max() for n, grad in whole.items()) > 1e-2


# ---------------------------------------------------------------- a method that reads dev


def test_a_method_that_reads_dev_is_handed_them_before_its_epoch_end(tmp_path: Path, monkeypatch) -> None:
    """EpochEndCallback(head, dev_predictions=...) calls the function at each epoch's end, with the
    model in evaluation mode and without gradient, and hands the method what it returns, before the
    method's on_epoch_end; the model trains on in training mode."""
    register_recorders(monkeypatch)
    model = build_tiny_bert("onehot", {}, tokens=False)
    torch.manual_seed(0)
    model.head = RecordingMethod(16, NUM_CLASSES)
    dev = Sequences(tokens=False, seed=1)
    returned, states = [], []

    def dev_predictions(method):
        states.append((model.training, method.training, torch.is_grad_enabled()))
        returned.append((method.logits(model(dev.ids, dev.mask).features), dev.labels))
        return returned[-1]

    trainer = trainer_for(
        model, tmp_path, dev_predictions=dev_predictions, per_device_train_batch_size=8, num_train_epochs=2
    )
    trainer.train()
    assert kinds() == ["dev", "epoch_end"] * 2
    assert states == [(False, False, False)] * 2 and model.training
    for (_, logits, labels), (want, want_labels) in zip(dev_events(), returned):
        assert torch.equal(logits, want) and torch.equal(labels, want_labels)
    assert not torch.equal(returned[0][0], returned[1][0])  # each epoch's weights


def test_a_method_that_reads_dev_without_dev_predictions_is_refused(monkeypatch) -> None:
    register_recorders(monkeypatch)
    with pytest.raises(ValueError) as caught:
        EpochEndCallback(RecordingMethod(16, NUM_CLASSES))
    message = str(caught.value)
    assert message.startswith("recorder reads the dev split's predictions at each epoch's end: give ")
    assert "EpochEndCallback dev_predictions=" in message and "\n" not in message
    EpochEndCallback(DeafMethod(16, NUM_CLASSES))  # without the trait: nothing to give
