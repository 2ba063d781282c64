"""Warm workers (labelemb.sweep.worker): a worker trains unit after unit, keeps the data it read,
and starts each run from the state it started in, so a run's numbers are a fresh process's."""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch
from helpers.fault_runs import clean_config, metrics, threads_and_variable, write_project

from labelemb.assembly import plan_run
from labelemb.assembly.parts import DataSource
from labelemb.data import DataRequest
from labelemb.data.label_noise import NoiseConfig
from labelemb.sweep.executors import Unit, open_pool
from labelemb.sweep.failures import Failure
from labelemb.sweep.worker import GlobalState, HeldData, data_key, work
from labelemb.training import build_config, load_config


def test_the_state_a_run_sets_is_put_back():
    """Each setting a run may change, changed by hand (not through the table that restores them),
    then read back by hand after restore."""
    # torch's defaults to start from, whatever a run trained earlier in this process left set
    # (train.deterministic turns these on).
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    before_threads = torch.get_num_threads()
    before_env = dict(os.environ)
    before_filters = list(warnings.filters)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    state = GlobalState.capture()
    try:
        torch.set_num_threads(before_threads + 1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = True
        torch.set_float32_matmul_precision("medium")
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.set_anomaly_enabled(True)
        random.seed(9)
        np.random.seed(9)
        torch.manual_seed(9)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        os.environ.pop("LABELEMB_DATA", None)
        warnings.simplefilter("error")
    finally:
        state.restore()
    assert torch.get_num_threads() == before_threads
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_default_dtype() == torch.float32
    assert torch.is_grad_enabled() and not torch.is_anomaly_enabled()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws
    assert dict(os.environ) == before_env
    assert warnings.filters == before_filters


class CountedSource:
    """A data source that counts its reads."""

    def __init__(self, name: str, request: DataRequest, fingerprint: str | None = None) -> None:
        self.name, self.request, self._fingerprint, self.reads = name, request, fingerprint, 0

    def fingerprint(self) -> str | None:
        return self._fingerprint

    def load(self) -> object:
        self.reads += 1
        return object()


def test_a_worker_reads_the_same_data_once_and_other_data_anew():
    held = HeldData(capacity=2)
    digits = CountedSource("digits", DataRequest())
    assert held.get(digits) is held.get(digits) and digits.reads == 1
    fewer = CountedSource("digits", DataRequest(max_train_pairs=100))
    files_v1 = CountedSource("files", DataRequest(), fingerprint="content one")
    files_v2 = CountedSource("files", DataRequest(), fingerprint="content two")  # the files edited
    for source in (fewer, files_v1, files_v2):
        held.get(source)
        assert source.reads == 1
    assert len({data_key(s) for s in (digits, fewer, files_v1, files_v2)}) == 4
    assert data_key(digits) == data_key(CountedSource("digits", DataRequest(progress=False)))
    held.get(digits)  # the oldest two were let go (capacity 2): read again
    assert digits.reads == 2


def test_a_warm_workers_run_equals_a_fresh_processs(tmp_path):
    """One worker trains a run that leaves float64 as torch's default dtype, deterministic
    algorithms, one thread and an environment variable behind, then a clean run: the clean run's
    numbers equal the same run's in a fresh worker (without the reset, it trains in float64
    against float32 data and fails)."""
    leaky = load_config(write_project(tmp_path / "proj", factory="leaky"), [f"output_dir={tmp_path / 'out'}"])
    warm = build_config(clean_config(tmp_path / "warm"), [])
    fresh = build_config(clean_config(tmp_path / "fresh"), [])
    with open_pool([None], threads=2) as pool:
        left = pool.submit(work, Unit.of([plan_run(leaky)])).result()
        assert isinstance(left, Failure) and "leaves the process changed" in left.reason
        assert not isinstance(pool.submit(work, Unit.of([plan_run(warm)])).result(), Failure)
        threads, variable = pool.submit(threads_and_variable).result()
    with open_pool([None], threads=2) as pool:
        assert not isinstance(pool.submit(work, Unit.of([plan_run(fresh)])).result(), Failure)
    assert metrics(warm.run_dir()) == metrics(fresh.run_dir())
    assert threads == 2 and variable is None  # the worker's own, after a run changed them


def test_a_worker_reads_data_under_other_noise_anew():
    # A held data set carries its noise (DataSource.load applies it, and the trainer keeps a data
    # set that has noise as it is): a sweep over noise rates must not train on the first rate's.
    sources = [
        DataSource("digits", DataRequest(), None),
        DataSource("digits", DataRequest(), NoiseConfig(kind="symmetric", rate=0.2)),
        DataSource("digits", DataRequest(), NoiseConfig(kind="symmetric", rate=0.4)),
        DataSource("digits", DataRequest(), NoiseConfig(kind="symmetric", rate=0.4, seed=1)),
    ]
    assert len({data_key(source) for source in sources}) == 4
    again = DataSource("digits", DataRequest(), NoiseConfig(kind="symmetric", rate=0.4))
    assert data_key(again) == data_key(sources[2])
