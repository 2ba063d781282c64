"""train.cuda_graphs: the step replayed as CUDA graphs where there is CUDA; elsewhere the same run
as without the setting, said once in one line."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.batched_checks import train_batched
from helpers.run_checks import (
    assert_same_resumed_run,
    interrupt_at_first_checkpoint,
    read_metrics,
    read_summary,
    untimed,
)

from labelemb.assembly import graphs
from labelemb.training import train

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(autouse=True)
def said_afresh(monkeypatch):
    monkeypatch.setattr(graphs, "_said", set())


def _folders(small_config, digits, tmp_path, batched, *overrides):
    configs = [small_config(*overrides, seed=s, output_dir=tmp_path) for s in (0, 1)]
    if batched:
        train_batched(configs, dataset=digits)
    else:
        train(configs[0], dataset=digits)
    return [config.run_dir() for config in configs[: 2 if batched else 1]]


@pytest.mark.parametrize("batched", [False, True], ids=["one-run", "seeds-side-by-side"])
def test_without_cuda_a_run_is_the_run_without_graphs_said_once(
    small_config, digits, tmp_path, caplog, batched
):
    caplog.set_level(logging.WARNING, logger="labelemb.assembly.graphs")
    with_graphs = _folders(
        small_config, digits, tmp_path / "graphs", batched, "train.cuda_graphs=true", "train.device=cpu"
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "labelemb.assembly.graphs"]
    assert lines == [
        "train.cuda_graphs: CUDA graphs need a CUDA device, this run trains on cpu: its steps run as "
        "they would without the setting"
    ]
    plain = _folders(small_config, digits, tmp_path / "plain", batched, "train.device=cpu")
    for got, want in zip(with_graphs, plain):
        assert untimed(read_metrics(got)) == untimed(read_metrics(want))
        assert read_summary(got)["selected_test_error"] == read_summary(want)["selected_test_error"]


@pytest.mark.parametrize("device", DEVICES)
def test_graphs_resume_from_a_checkpoint_as_an_uninterrupted_run(small_config, digits, tmp_path, device):
    """A run with graphs stopped after its first check and run again ends where one run ends."""
    settings = ("train.cuda_graphs=true", f"train.device={device}", "train.eval_every=400")
    whole = small_config(*settings, output_dir=tmp_path / "whole")
    train(whole, dataset=digits)
    broken = small_config(*settings, output_dir=tmp_path / "broken")
    interrupt_at_first_checkpoint(broken, digits)
    train(broken, dataset=digits)
    assert_same_resumed_run(broken.run_dir(), whole.run_dir())
