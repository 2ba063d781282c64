"""train.deterministic: torch's deterministic kernels for a run (on by default), and the one line
that names an operation without one."""

from __future__ import annotations

import os

import pytest
import torch

from labelemb.callbacks import Callback
from labelemb.config import ConfigError
from labelemb.training import train
from labelemb.training.determinism import CUBLAS_WORKSPACE, use_deterministic_kernels
from labelemb.training.recipe import name_nondeterministic
from labelemb.training.threads import same_numbers_at_any_thread_count


@pytest.fixture
def restored_switches():
    """The test process's switches as they were, whatever a run set."""
    was = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic
    yield
    torch.use_deterministic_algorithms(was[0])
    torch.backends.cudnn.deterministic = was[1]


def test_deterministic_is_on_by_default_and_can_be_turned_off(small_config):
    assert small_config().train.deterministic is True
    assert small_config("train.deterministic=false").train.deterministic is False
    with pytest.raises(ConfigError):
        small_config("train.deterministic=sometimes")


@pytest.mark.parametrize("on", [True, False])
def test_a_run_trains_with_its_configs_setting(small_config, digits, restored_switches, on):
    seen = []

    class Watch(Callback):
        def on_step(self, runs):
            seen.append(torch.are_deterministic_algorithms_enabled())

    torch.use_deterministic_algorithms(not on)  # what the process had before: the run's config wins
    config = small_config(f"train.deterministic={str(on).lower()}", "train.max_steps=2")
    train(config, dataset=digits, callbacks=[Watch()])
    assert seen and set(seen) == {on}
    assert torch.backends.cudnn.deterministic is on


def test_the_switch_sets_torchs_flags_and_cublas_workspace(restored_switches, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    use_deterministic_kernels(True)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert not torch.utils.deterministic.fill_uninitialized_memory  # no fill per allocation
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    use_deterministic_kernels(False)
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_the_command_lines_start_sets_cublas_workspace_unless_the_user_did(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    same_numbers_at_any_thread_count()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    same_numbers_at_any_thread_count()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_an_operation_without_a_deterministic_kernel_is_named_in_one_line(restored_switches):
    use_deterministic_kernels(True)
    with pytest.raises(RuntimeError) as raised:  # torch's own refusal, on the CPU: put_
        torch.zeros(4).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
    line = name_nondeterministic(raised.value, "my_method")
    assert line is not None and "\n" not in line
    assert line.startswith("my_method uses put_, which has no deterministic kernel")
    assert "train.deterministic=false" in line
    assert name_nondeterministic(RuntimeError("CUDA out of memory"), "my_method") is None
