"""labelemb.integrations.lightning: methods get their epoch-end update under lightning.Trainer.

Two CPU processes under Lightning's own ``ddp_spawn`` launcher (gloo, loopback) end each epoch with
the same label state as one process on the whole batch; a checkpoint restores that state exactly and
a run resumed from it goes on as if never stopped; without the callback OLS's soft labels never move.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from helpers.dev_checks import DeafMethod, dev_events, kinds, register_recorders
from helpers.lightning_models import (
    BATCH,
    CLASSES,
    EPOCHS,
    EXAMPLES,
    Heads,
    dataset,
    dev_predictions_of,
    dev_split,
    fit,
)
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labelemb import methods
from labelemb.integrations.lightning import LabelembCallback, find_methods


class Record(lightning.Callback):
    """Keeps each epoch's label state after the update (runs after LabelembCallback); saves it per rank."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.soft_labels: list[torch.Tensor] = []

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: Heads) -> None:
        self.soft_labels.append(pl_module.heads["ols"].soft_labels.clone())

    def on_train_end(self, trainer: lightning.Trainer, pl_module: Heads) -> None:
        if self.folder is not None:
            state = {name: value.clone() for name, value in pl_module.state_dict().items()}
            torch.save(
                {"soft_labels": self.soft_labels, "state": state},
                self.folder / f"rank{trainer.global_rank}.pt",
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BOTH = {"ols": {}, "label_embedding": {}}


@pytest.mark.parametrize("accumulate", [1, 4], ids=["one-batch-a-step", "four-micro-batches-a-step"])
def test_two_ddp_processes_match_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accumulate: int
) -> None:
    """Each rank's step of 16 examples, or of 4 micro-batches of 4, is half the one process's 32."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    if os.path.exists("/sys/class/net/lo"):
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")  # gloo on loopback, whatever the hostname says
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # the seed of the DistributedSampler Lightning adds

    single_model, one = Heads(BOTH), Record()
    fit(single_model, shuffled=True, callbacks=[LabelembCallback(), one])
    fit(
        Heads(BOTH),
        batch_size=BATCH // 2 // accumulate,
        accumulate_grad_batches=accumulate,
        strategy="ddp_spawn",
        devices=2,
        callbacks=[LabelembCallback(), Record(tmp_path)],
    )

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, value in ranks[0]["state"].items():  # every rank holds the same reduced state
        assert torch.equal(ranks[1]["state"][name], value), name
    for a, b in zip(ranks[0]["soft_labels"], ranks[1]["soft_labels"]):
        assert torch.equal(a, b)

    assert len(one.soft_labels) == len(ranks[0]["soft_labels"]) == EPOCHS
    for epoch, (single, double) in enumerate(zip(one.soft_labels, ranks[0]["soft_labels"])):
        # A class's row is its correct examples' mean prediction: non-zero, and a distribution.
        assert single.sum(-1).sub(1).abs().max() < 1e-5 and single.diagonal().min() > 0.2, epoch
        torch.testing.assert_close(
            double, single, rtol=0, atol=1e-5, msg=lambda m, e=epoch: f"OLS S, epoch {e}: {m}"
        )
    embedding = single_model.heads["label_embedding"].embedding.detach()
    assert (embedding - torch.eye(CLASSES)).abs().max() > 1e-3  # E moved
    torch.testing.assert_close(
        ranks[0]["state"]["heads.label_embedding.embedding"], embedding, rtol=0, atol=1e-5
    )
    for name, value in single_model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(
                ranks[0]["state"][name], value, rtol=0, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
            )


def test_without_the_callback_ols_soft_labels_never_move() -> None:
    model = Heads({"ols": {}})
    fit(model)
    ols = model.heads["ols"]
    assert torch.equal(ols.soft_labels, torch.zeros(CLASSES, CLASSES))  # never updated
    # Both epochs' hits piled up in one accumulator instead of becoming soft labels.
    assert int(ols.cnt.sum()) > EXAMPLES


CHECKPOINTED = {
    "ols": {},
    "label_embedding": {"variant": "nlp"},
    "lwr": {"num_examples": EXAMPLES, "epochs": 3, "k": 1},
}


def states(model: Heads) -> dict[str, torch.Tensor]:
    """Every tensor of the model and of the heads kept outside it."""
    found = {name: value.detach().clone() for name, value in model.state_dict().items()}
    if model.outside is not None:
        found.update({f"outside.{k}": v.detach().clone() for k, v in model.outside.state_dict().items()})
    return found


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("outside", [None, "ols"], ids=["heads-in-module", "head-outside-module"])
def test_checkpoint_restores_method_state_exactly(tmp_path: Path, outside: str | None) -> None:
    def callback(model: Heads) -> LabelembCallback:
        return LabelembCallback(*model.all_heads()) if outside else LabelembCallback()

    straight = Heads(CHECKPOINTED, outside=outside)
    fit(straight, max_epochs=2, callbacks=[callback(straight)])

    first = Heads(CHECKPOINTED, outside=outside)
    fit(first, max_epochs=1, callbacks=[callback(first)]).save_checkpoint(tmp_path / "epoch1.ckpt")
    saved = states(first)
    assert int(saved["heads.lwr.epoch"]) == 1 and int(saved["heads.label_embedding.num_updates"]) > 0
    assert saved["heads.ols.soft_labels"].abs().sum() > 0

    # Another seed: whatever matches afterwards came from the checkpoint.
    restored = Heads(CHECKPOINTED, seed=1, outside=outside)
    fit(restored, max_epochs=1, callbacks=[callback(restored)], ckpt_path=tmp_path / "epoch1.ckpt")
    assert_same(states(restored), saved)

    resumed = Heads(CHECKPOINTED, seed=1, outside=outside)
    fit(resumed, max_epochs=2, callbacks=[callback(resumed)], ckpt_path=tmp_path / "epoch1.ckpt")
    assert_same(states(resumed), states(straight))


@pytest.mark.parametrize("saver", ["after-validation", "every-n-steps"])
def test_checkpoint_saved_before_the_epoch_end_update_resumes_exactly(tmp_path: Path, saver: str) -> None:
    # Both checkpoints are written after the epoch's last batch and before on_train_epoch_end: the
    # soft labels are the previous epoch's, this epoch's statistics still pending. Lightning 2.6 resumes
    # the first at the epoch's end (it calls on_train_epoch_end), the second past it (it does not: the
    # callback makes the update then).
    straight = Heads(CHECKPOINTED)
    fit(straight, max_epochs=2, val=True, callbacks=[LabelembCallback()])

    if saver == "every-n-steps":
        saving = ModelCheckpoint(dirpath=tmp_path, filename="saved", every_n_train_steps=EXAMPLES // BATCH)
    else:
        saving = ModelCheckpoint(dirpath=tmp_path, filename="saved", save_on_train_epoch_end=False)
    fit(
        Heads(CHECKPOINTED),
        max_epochs=1,
        val=True,
        callbacks=[LabelembCallback(), saving],
        enable_checkpointing=True,
    )
    checkpoint = torch.load(tmp_path / "saved.ckpt", weights_only=False)
    assert int(checkpoint["state_dict"]["heads.ols.cnt"].sum()) > 0  # written before the update
    assert int(checkpoint["state_dict"]["heads.lwr.epoch"]) == 0

    resumed = Heads(CHECKPOINTED, seed=1)
    fit(resumed, max_epochs=2, val=True, callbacks=[LabelembCallback()], ckpt_path=tmp_path / "saved.ckpt")
    assert_same(states(resumed), states(straight))


def test_finds_the_outermost_methods() -> None:
    model = Heads(BOTH)
    assert find_methods(model) == list(model.heads.values())
    assert find_methods(model.heads["ols"]) == [model.heads["ols"]]
    with pytest.raises(TypeError, match="labelemb methods"):
        LabelembCallback(nn.Linear(2, 2))  # type: ignore[arg-type]


ACCUMULATED = {
    "label_embedding": {},
    "label_embedding_paper": {"variant": "paper"},
    # alpha under o2's gold probability at the start (1 / 5 classes): the penalty, a sum over the
    # step's rows, takes part.
    "label_embedding_penalty": {"alpha": 0.05},
    # The soft term from the third optimiser step on, not the third micro-batch.
    "label_embedding_nlp": {"variant": "nlp", "soft_warmup": 2},
    "ols": {},
    "lwr": {"num_examples": 72, "epochs": 2, "k": 1},  # records at the first epoch's end, then learns from it
    "maxsup": {"epochs": 2},  # the second epoch's weight after the callback's epoch end
    "acls": {"margin": 0.0},  # every hinge at work on the small logits
    "dual_focal": {},
    # Inverse focal in the first epoch, then gammas moved by the dev predictions at its end.
    "adafocal": {"gamma_initial": -1.0, "lam": 3.0},
}


class StepGradients(lightning.Callback):
    """Every parameter's gradient each time the optimiser is about to step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_before_optimizer_step(self, trainer: lightning.Trainer, pl_module: Heads, optimizer: Any) -> None:
        self.steps.append({n: p.grad.detach().clone() for n, p in pl_module.named_parameters()})


def accumulated_steps(name: str, batch_size: int, accumulate: int) -> list[dict[str, torch.Tensor]]:
    """Each optimiser step's gradients over two epochs of 72 examples in float64, ``accumulate``
    micro-batches of ``batch_size`` a step (the last step of an epoch shorter: 8 examples)."""
    method = "label_embedding" if name.startswith("label_embedding") else name
    model = Heads({method: ACCUMULATED.get(name, {})}).double()
    x, y, index = dataset().tensors
    data = TensorDataset(x[:72].double(), y[:72], index[:72])
    capture = StepGradients()
    run = lightning.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        accumulate_grad_batches=accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LabelembCallback(dev_predictions=dev_predictions_of(model)), capture],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        run.fit(model, DataLoader(data, batch_size=batch_size))
    return capture.steps


@pytest.mark.parametrize("name", list(ACCUMULATED))
def test_accumulated_micro_batches_match_one_batch(name: str) -> None:
    """``accumulate_grad_batches=4`` of 8 examples gives every optimiser step the gradients of one
    batch of 32 (float64), the short last step of each epoch (8 examples) those of its own batch:
    label_embedding's E (its mean over the rows o2 gets right) and penalty (a sum) included, where
    Lightning alone averages the micro-batches' losses."""
    whole = accumulated_steps(name, 32, 1)
    micro = accumulated_steps(name, 8, 4)
    assert len(whole) == len(micro) == 6  # per epoch: 32 + 32 + 8 examples
    for step, (expected, got) in enumerate(zip(whole, micro)):
        assert got.keys() == expected.keys()
        for n, grad in expected.items():
            message = lambda m, n=n, s=step: f"step {s}, {n}: {m}"  # noqa: E731
            torch.testing.assert_close(got[n], grad, rtol=1e-9, atol=1e-12, msg=message)
    # Every parameter learns (a step where o2 gets no row right leaves E without a gradient).
    for n in whole[0]:
        assert any(step[n].abs().max() > 0 for step in whole), f"{n} got no gradient"


@pytest.mark.parametrize("name", ["lwal", "lwal10", "lwal10_rpl", "mdca"])
def test_batch_wide_methods_are_not_exact_under_accumulation_and_say_so(name: str) -> None:
    """lwal's label vectors are each micro-batch's class means, mdca's term each micro-batch's
    statistic: the callback warns, in one line, and the steps do differ from one batch's."""
    method = methods.method_class(name).name  # a preset warns under its method's name
    whole = accumulated_steps(name, 32, 1)
    with pytest.warns(
        UserWarning, match=rf"^{method} under gradient accumulation \(4 micro-batches a step\)"
    ) as caught:
        micro = accumulated_steps(name, 8, 4)
    assert ["\n" in str(w.message) for w in caught if method in str(w.message)] == [False]
    differences = [(micro[0][n] - grad).abs().max() / grad.abs().max() for n, grad in whole[0].items()]
    assert max(differences) > 1e-2


def test_exact_methods_are_not_warned_about() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*gradient accumulation.*")
        accumulated_steps("ols", 8, 4)
        accumulated_steps("lwal", 32, 1)  # no accumulation


# ---------------------------------------------------------------- a method that reads dev


def test_a_method_that_reads_dev_is_handed_them_before_its_epoch_end(monkeypatch) -> None:
    """LabelembCallback(dev_predictions=...) calls the function at each epoch's end, with the module
    in evaluation mode and without gradient, and hands each reading method what it returns, before
    its on_epoch_end; a method without the trait gets its on_epoch_end alone."""
    register_recorders(monkeypatch)
    model = Heads({"recorder": {}, "deaf": {}})
    x, y = dev_split()
    returned, states = [], []

    def dev_predictions(method):
        states.append((model.training, method.training, torch.is_grad_enabled()))
        returned.append((method.logits(model.backbone(x)), y))
        return returned[-1]

    fit(model, callbacks=[LabelembCallback(dev_predictions=dev_predictions)])
    assert kinds() == ["dev", "epoch_end", "epoch_end"] * EPOCHS  # the recorder's two, the deaf one's
    assert states == [(False, False, False)] * EPOCHS and model.training
    for (_, logits, labels), (want, want_labels) in zip(dev_events(), returned):
        assert torch.equal(logits, want) and torch.equal(labels, want_labels)
    assert not torch.equal(returned[0][0], returned[1][0])  # each epoch's weights


def test_a_method_that_reads_dev_without_dev_predictions_is_refused(monkeypatch) -> None:
    register_recorders(monkeypatch)
    refused = r"^recorder reads the dev split's predictions .* give LabelembCallback dev_predictions="
    with pytest.raises(ValueError, match=refused):
        fit(Heads({"recorder": {}}), callbacks=[LabelembCallback()])
    fit(Heads({"deaf": {}}), max_epochs=1, callbacks=[LabelembCallback()])
    assert kinds() == ["epoch_end"] and DeafMethod.reads_dev is False
