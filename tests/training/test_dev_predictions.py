"""The door for a method that reads the dev split's predictions at each epoch's end
(``Method.reads_dev``, ``Method.on_dev_predictions``; labelemb.training.dev_predictions).

A recording method, registered for these tests only, receives at each epoch's end, before its
``on_epoch_end``, exactly the dev logits its task computes with the weights of that moment in
evaluation mode; seeds side by side each their own; a method without the trait is handed nothing;
data without a dev split, or a task that gives no logits of a split, is refused before anything
trains; under torchrun every process takes process 0's logits.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers.batched_checks import train_batched
from helpers.dev_checks import EVENTS, MODES, RecordingMethod, dev_events, kinds, register_recorders
from helpers.repo_paths import ROOT
from torch import Tensor

from labelemb import methods
from labelemb.callbacks import Callback
from labelemb.config import ConfigError
from labelemb.data import Dataset
from labelemb.integrations.dev_predictions import hand_dev_predictions
from labelemb.methods.abilities import ReadsDev, Stackable
from labelemb.methods.base import LinearOutputMethod, MethodOutput, Rows, gold
from labelemb.methods.registry import METHODS
from labelemb.tasks import Classification, Predictor
from labelemb.training import train
from labelemb.training.dev_predictions import DevSplitCheck, dev_predictions

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def recorder(monkeypatch):
    register_recorders(monkeypatch)


#: The task's own function, whatever a test counts the trainer's calls of it with.
SPLIT_LOGITS = Classification.split_logits


class ExpectedDevLogits(Callback):
    """At each epoch's end (after the methods' update), each run's dev logits as its task computes
    them from the weights of that moment."""

    def __init__(self) -> None:
        self.seen: list[list[Tensor]] = []

    def setup(self, configs, dataset, task) -> None:
        self.task, self.dev = task, dataset.dev

    def on_epoch_end(self, runs) -> None:
        self.seen.append(
            [SPLIT_LOGITS(self.task, Predictor(r.network, r.model, r.method), self.dev) for r in runs]
        )


def test_a_method_that_reads_dev_gets_the_tasks_dev_logits_before_its_epoch_end(
    recorder, small_config, digits, monkeypatch
):
    calls = []
    split_logits = Classification.split_logits
    monkeypatch.setattr(
        Classification, "split_logits", lambda self, *a: calls.append(1) or split_logits(self, *a)
    )
    expected = ExpectedDevLogits()
    # Checks mid-epoch too (every 300 examples): the dev predictions come at epochs' ends only.
    config = small_config("method.name=recorder", "train.epochs=3", "train.eval_every=300")
    train(config, dataset=digits, callbacks=[expected])
    assert kinds() == ["dev", "epoch_end"] * 3
    assert len(calls) == 3
    assert MODES and not any(MODES)  # every logit computed without gradient: in evaluation mode
    for (_, logits, labels), [want] in zip(dev_events(), expected.seen):
        assert logits.shape == (len(digits.dev), 10) and logits.dtype == torch.float32
        assert torch.equal(logits, want)
        assert torch.equal(labels, digits.dev.labels)
    assert not torch.equal(dev_events()[0][1], dev_events()[1][1])  # the weights of each epoch's end
    calls.clear()
    train(small_config("method.name=deaf", experiment="deaf"), dataset=digits)
    assert calls == [] and kinds()[6:] == ["epoch_end"] * 2


def test_seeds_side_by_side_each_get_their_own_dev_logits(recorder, small_config, digits, tmp_path):
    expected = ExpectedDevLogits()
    configs = [small_config("method.name=recorder", seed=s, output_dir=tmp_path / "b") for s in (0, 1, 2)]
    summaries = train_batched(configs, dataset=digits, callbacks=[expected])
    assert [s["batched_seeds"] for s in summaries] == [3, 3, 3]
    assert kinds() == ["dev", "epoch_end"] * 2
    for (_, logits, labels), want in zip(dev_events(), expected.seen):
        assert logits.shape == (3, len(digits.dev), 10)
        assert torch.equal(logits, torch.stack(want))  # seed s's from its own weights
        assert torch.equal(labels, digits.dev.labels.expand(3, -1))
        assert not torch.equal(logits[0], logits[1])
    batched = [event[1] for event in dev_events()]
    EVENTS.clear()
    train(small_config("method.name=recorder", seed=1, output_dir=tmp_path / "alone"), dataset=digits)
    for stacked, (_, own, _) in zip(batched, dev_events(), strict=True):
        torch.testing.assert_close(stacked[1], own, rtol=1e-4, atol=1e-5)  # seed 1 as a run of its own


def test_without_a_dev_split_the_method_is_refused_before_anything_trains(recorder, small_config, digits):
    no_dev = Dataset("digits", digits.train, None, digits.test, digits.class_names)
    config = small_config("method.name=recorder")
    with pytest.raises(ConfigError) as caught:
        train(config, dataset=no_dev)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("method 'recorder' reads the dev split's predictions at each epoch's end")
    assert "has no dev split" in message and "data.files.dev_fraction" in message
    assert not config.run_dir().exists() and EVENTS == []
    train(small_config("method.name=deaf"), dataset=no_dev)  # a method without the trait trains


def test_a_task_that_predicts_no_split_is_refused(recorder, small_config, digits):
    class Decoder:
        data_kind = "a text corpus (pairs of token sequences)"

    with pytest.raises(ConfigError, match="which a text corpus .* does not give .* Decoder"):
        DevSplitCheck().setup([small_config("method.name=recorder")], digits, Decoder())
    DevSplitCheck().setup([small_config("method.name=deaf")], digits, Decoder())


class _RankTask:
    """A task whose logits differ on every process, as rounding on different devices might."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def split_logits(self, predict, split) -> Tensor:
        return torch.full((3, 4), float(self.rank) + 0.5)


class _Split:
    labels = torch.tensor([0, 2, 1])


def _torchrun_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        logits, labels = dev_predictions(_RankTask(rank), None, _Split(), torch.device("cpu"))
        # The adapters' door: a function of the user's, called on every process.
        head = RecordingMethod(3, 4)
        hand_dev_predictions(
            head, lambda method: (_RankTask(rank).split_logits(None, None), _Split.labels), None
        )
        ((_, handed, _),) = dev_events()
        torch.save({"logits": logits, "labels": labels, "adapter": handed}, f"{out_dir}/rank{rank}.pt")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
    os._exit(0)  # gloo's threads can abort a normal exit after destroy_process_group (see test_ols)


def test_under_torchrun_every_process_takes_process_0s_logits(tmp_path):
    """The trainer's door and the adapters' alike."""
    mp.spawn(_torchrun_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(got["logits"], torch.full((3, 4), 0.5))
        assert torch.equal(got["labels"], _Split.labels)
        assert torch.equal(got["adapter"], torch.full((3, 4), 0.5))


def extending_page_method() -> str:
    """The code of docs/extending.md's method that reads the dev split's predictions."""
    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    section = page.split("## A method that reads the dev split's predictions\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    return block


def test_the_extending_page_s_method_weighs_each_class_by_its_dev_error(
    small_config, digits, tmp_path, monkeypatch
):
    """Its class weights after a run are 1 + each class's error in the dev logits of the last
    epoch's end; its seeds train side by side with the weights of runs of their own."""
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))
    names = {"Any": Any, "F": F, "Tensor": Tensor, "torch": torch, "methods": methods}
    names.update(LinearOutputMethod=LinearOutputMethod, MethodOutput=MethodOutput, Rows=Rows, gold=gold)
    names.update(ReadsDev=ReadsDev, Stackable=Stackable)
    exec(extending_page_method(), names)
    expected = ExpectedDevLogits()
    alone = small_config("method.name=dev_weighted", output_dir=tmp_path / "alone")
    train(alone, dataset=digits, callbacks=[expected])
    weight = torch.load(alone.run_dir() / "checkpoint.pt", weights_only=True)["network"]["method.weight"]
    wrong = expected.seen[-1][0].argmax(-1) != digits.dev.labels
    errors = torch.stack([wrong[digits.dev.labels == c].float().mean() for c in range(10)])
    assert (errors > 0).any()
    torch.testing.assert_close(weight, 1.0 + errors, rtol=0, atol=1e-6)
    side_by_side = [
        small_config("method.name=dev_weighted", seed=s, output_dir=tmp_path / "b") for s in (0, 1)
    ]
    assert [s["batched_seeds"] for s in train_batched(side_by_side, dataset=digits)] == [2, 2]
    stacked = torch.load(side_by_side[0].run_dir() / "checkpoint.pt", weights_only=True)["network"]
    # One example in 30 of a class moved by rounding would move its weight by 1/30: none did.
    torch.testing.assert_close(stacked["method.weight"], weight, rtol=0, atol=1e-6)
