"""The grid on Ray (``compare --executor ray``): warm workers, Ray actors, that train the units.

Ray is an extra (``pip install "labelemb[ray]"``). Without an address, :class:`RayExecutor` starts
an embedded Ray on this machine for the grid and stops it after; with one (``auto``,
``host:port``, ``ray://host:10001``) it connects to that cluster. The grid gets as many workers
(:mod:`.ray_workers`) as the cluster holds at once, each asking for one CPU, and 1/``runs_per_device``
of a GPU when the cluster has GPUs and the runs train on CUDA; Ray's actor pool hands each the
next unit (one run, or one method's seeds when batched) as it finishes one. A worker trains
through :func:`labelemb.sweep.worker.work`, which resumes a run from the checkpoint in its folder:
a worker or node that dies mid-run is Ray's to restart (``max_retries``), and the unit it held
picks up at its last checkpoint. A run that fails is its unit's failure (the grid goes on); one
that ran out of memory is tried once more alone, after the others.

Run folders must be on storage every node sees; :func:`check_shared_storage` checks that before
any run starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assembly import resolve_device
from ..rundir import first_missing, remove_empty_folders
from .failures import Failure, retry_alone
from .ray_workers import end_workers, output_dir, start_workers, train_on
from .units import ExecutorError, Failed, Finished, Outcome, Unit, deliver

INSTALL = 'pip install "labelemb[ray]"'
#: What a worker takes from the driver's environment, so a run finds its data as it would here.
FORWARDED_ENVIRONMENT = ("LABELEMB_DATA", "LABELEMB_CACHE")
#: The HTTP/2 client preface and an empty SETTINGS frame: what a gRPC server (Ray's GCS, the Ray
#: Client server) answers with a SETTINGS frame of its own.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 0x04


def _import_ray() -> Any:
    try:
        import ray  # lazy: the ray extra
    except ImportError as error:
        if error.name == "ray":
            raise ExecutorError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
        raise ExecutorError(
            f"--executor ray: Ray is installed but does not import ({error}); {INSTALL}"
        ) from None
    return ray


@dataclass
class RayExecutor:
    """Runs a grid's units as Ray tasks: on the cluster at ``address``, or on an embedded Ray.

    ``runs_per_device``: runs sharing one GPU (each task asks for ``1 / runs_per_device`` of one).
    ``max_retries``: how often Ray runs a task again whose worker or node died.
    ``connect_timeout``: seconds a cluster address has to answer.
    """

    address: str | None = None
    runs_per_device: int = 1
    max_retries: int = 3
    connect_timeout: float = 30.0
    #: The session's workers by GPU share (None: no session open).
    _workers: dict[float, list[Any]] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        _import_ray()  # before anything is planned or written
        if self.runs_per_device < 1:
            raise ExecutorError(f"--runs-per-device must be at least 1, not {self.runs_per_device}")
        if self.address is not None and self.address != "auto":
            _host_port(self.address)  # a malformed address fails here, with the usage

    def run(self, units: list[Unit], finished: Finished, failed: Failed | None = None) -> None:
        if not units:
            return  # a grid whose runs all finished starts no Ray
        ray = _import_ray()
        with self.session():
            gpus = self._cluster_gpus(ray, units)
            cwd = os.getcwd()
            for folder in sorted({output_dir(config, cwd) for unit in units for config in unit.configs}):
                check_shared_storage(folder)
            share = 1 / self.runs_per_device if gpus and any(_on_cuda(unit) for unit in units) else 0
            out_of_memory: dict[int, Failure] = {}
            died = False
            try:
                for i, outcome in train_on(ray, self._workers_for(ray, share, len(units)), units, cwd):
                    died = died or (isinstance(outcome, Failure) and outcome.worker_died)
                    if isinstance(outcome, Failure) and outcome.out_of_memory and len(units) > 1:
                        out_of_memory[i] = outcome  # tried again alone once the others are done
                    else:
                        deliver(i, outcome, finished, failed)
            except BaseException:
                self._end_workers(ray)  # an error, or Ctrl-C: nothing of the grid goes on
                raise
            if out_of_memory or died:
                # They hold the CPUs and GPUs a unit alone needs; one that died is not handed more.
                self._end_workers(ray)
            retry_alone(
                out_of_memory,
                lambda i: units[i].label(),
                lambda i: deliver(i, self._alone(ray, units[i], cwd, 1 if share else 0), finished, failed),
            )

    def _workers_for(self, ray: Any, share: float, count: int) -> list[Any]:
        """The session's workers of GPU share ``share``, as many as ``count`` units can use at
        once on the cluster (started where there are fewer; kept for the session's next grid)."""
        assert self._workers is not None, "workers live in a session"
        held = self._workers.setdefault(share, [])
        wanted = self._slots(ray, share, count)
        if len(held) < wanted:
            held += start_workers(ray, wanted - len(held), share, self.max_retries)
        return held

    def _end_workers(self, ray: Any) -> None:
        if self._workers:
            end_workers(ray, [worker for held in self._workers.values() for worker in held])
            self._workers.clear()

    def _slots(self, ray: Any, share: float, count: int) -> int:
        """How many workers the grid's ``count`` units get: as many as the cluster holds at once
        (one CPU each, and ``share`` of a GPU), at least one."""
        resources = ray.cluster_resources()
        fit = int(resources.get("CPU", 1))
        if share:
            fit = min(fit, int(resources.get("GPU", 0) / share + 1e-9))
        return max(1, min(count, fit))

    def _alone(self, ray: Any, unit: Unit, cwd: str, gpus: float) -> Outcome:
        """A unit trained by a worker of its own (``gpus``: a whole GPU, or none)."""
        workers = start_workers(ray, 1, gpus, self.max_retries)
        try:
            return next(outcome for _, outcome in train_on(ray, workers, [unit], cwd))
        finally:
            end_workers(ray, workers)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Ray initialised (embedded, or this address) and the grid's workers kept while open, and
        both ended after; a command that runs many grids (``tune``'s rounds) connects and starts
        its workers once. A Ray this process already initialised is used as it is and left running."""
        if self._workers is not None:
            yield  # opened already: its workers serve this grid too
            return
        ray = _import_ray()
        with self._connected(ray):
            self._workers = {}
            try:
                yield
            finally:
                self._end_workers(ray)
                self._workers = None

    @contextlib.contextmanager
    def _connected(self, ray: Any) -> Iterator[None]:
        """Ray initialised while open (embedded, or this address), and shut down after, unless this
        process had initialised it already."""
        if ray.is_initialized():
            yield
            return
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is None and not os.environ.get("RAY_ADDRESS"):
            # "local": a new Ray for this command, even where `ray start` left one running here.
            options.update(address="local", include_dashboard=False)
        else:
            where = self._reachable(ray)
            env = {name: os.environ[name] for name in FORWARDED_ENVIRONMENT if name in os.environ}
            if env:
                options["runtime_env"] = {"env_vars": env}
            options["address"] = where
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            if _refused_token(error):
                raise ExecutorError(
                    f"the Ray cluster{self._at()} refused this driver's authentication token: give it "
                    "the cluster's (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token; `ray get-auth-token` "
                    "on the head prints it)"
                ) from None
            raise ExecutorError(f"cannot start or reach Ray{self._at()}: {_one_line(error)}") from None
        try:
            yield
        finally:
            ray.shutdown()

    def _at(self) -> str:
        address = self.address or os.environ.get("RAY_ADDRESS")
        return f" at {address}" if address else ""

    def _reachable(self, ray: Any) -> str:
        """The address to connect to, once something there speaks gRPC within ``connect_timeout``."""
        address = self.address or os.environ.get("RAY_ADDRESS") or "auto"
        if address == "auto":
            try:
                from ray._private.services import canonicalize_bootstrap_address  # lazy: the ray extra

                found = canonicalize_bootstrap_address("auto")
            except ConnectionError:
                found = None
            if not found:
                raise ExecutorError(
                    "--ray-address auto: no running Ray cluster found on this machine (start one with "
                    "`ray start --head`, or give its address, ray://host:10001)"
                )
            address = found
        host, port = _host_port(address)
        _check_answers(host, port, self.connect_timeout, address)
        return address

    def _cluster_gpus(self, ray: Any, units: list[Unit]) -> bool:
        """Whether the cluster has GPUs for the units whose device is CUDA (or ``auto``); a CUDA device
        asked of a cluster without GPUs, or one GPU of a machine by its number, is refused.

        The cluster's resources decide, not this machine's: a driver without CUDA sends CUDA runs to
        a cluster with GPUs (the grid leaves the devices to this check). Ray schedules no other
        accelerator, so another device (``mps``) is checked here, as a local run's would be."""
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        devices = {config.train.device for unit in units for config in unit.configs}
        cuda = sorted(d for d in devices if d.startswith("cuda"))
        pinned = [d for d in cuda if d not in ("cuda", "cuda:0")]
        if pinned:
            raise ExecutorError(
                f"device {pinned[0]} names one GPU of a machine, but under --executor ray Ray picks each "
                "run's GPU: use device cuda (or auto)"
            )
        if cuda and not gpus:
            nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
            raise ExecutorError(
                f"the runs ask for device {cuda[0]}, but {self._cluster()} has no GPUs ({nodes} node(s): "
                f"{resources.get('CPU', 0):g} CPUs, 0 GPUs); add GPU nodes, or use device cpu"
            )
        for device in sorted(devices - {"auto", "cpu", *cuda}):
            resolve_device(device)
        return bool(gpus)

    def _cluster(self) -> str:
        """The cluster as a message names it: by its address, or as the command's own Ray."""
        address = self.address or os.environ.get("RAY_ADDRESS")
        return f"the Ray cluster at {address}" if address else "the Ray this command started on this machine"


def _on_cuda(unit: Unit) -> bool:
    """Whether a unit trains on a GPU where the cluster has them (device cuda, cuda:0 or auto)."""
    return any(
        config.train.device == "auto" or config.train.device.startswith("cuda") for config in unit.configs
    )


def _refused_token(error: BaseException | None) -> bool:
    """Whether Ray's connection failed on the cluster's token authentication (the reason is only in
    the text of an exception down the chain)."""
    while error is not None:
        if "InvalidAuthToken" in str(error) or type(error).__name__ == "AuthenticationError":
            return True
        error = error.__cause__ or error.__context__
    return False


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _host_port(address: str) -> tuple[str, int]:
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ExecutorError(
            f"--ray-address {address!r} is not an address: use auto, host:port (the head's GCS, port "
            "6379 by default) or ray://host:10001"
        )
    return host.strip("[]"), int(port)


def _check_answers(host: str, port: int, timeout: float, address: str) -> None:
    """Refuse at once an address nothing listens on, and within ``timeout`` seconds one where what
    listens does not answer as a gRPC server (Ray's own connection would wait for minutes)."""
    deadline = time.monotonic() + timeout
    fail = f"the Ray cluster at {address} does not answer"
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(_HTTP2_PREFACE)
            header = b""
            while len(header) < 9:
                connection.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    raise ExecutorError(f"{fail}: the connection was closed (is it the Ray head's port?)")
                header += chunk
    except TimeoutError:
        raise ExecutorError(f"{fail} within {timeout:g} s") from None
    except OSError as error:
        raise ExecutorError(f"{fail}: {error.strerror or error}") from None
    if header[3] != _SETTINGS_FRAME:
        raise ExecutorError(f"{fail} as Ray does (is it the Ray head's port?)")


def check_shared_storage(folder: str | Path, *, timeout: float = 120.0) -> None:
    """Refuse (:class:`ExecutorError`) unless every node of the connected Ray cluster that runs
    work reads a token this process writes in ``folder``: run folders must be on storage they share.

    ``folder`` is created if it does not exist, and removed again if the check fails.
    """
    ray = _import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # lazy: the ray extra

    path = Path(folder).absolute()
    created = first_missing(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        token_file = path / f".labelemb-storage-check-{token[:12]}"
        token_file.write_text(token)
    except OSError as error:
        raise ExecutorError(f"cannot write in the output folder {path}: {error.strerror or error}") from None
    ok = False
    try:
        nodes = [
            node
            for node in ray.nodes()
            if node.get("Alive")
            and (node.get("Resources", {}).get("CPU", 0) > 0 or node.get("Resources", {}).get("GPU", 0) > 0)
        ]
        read = ray.remote(num_cpus=0, max_retries=1)(_read_token)
        refs = {
            read.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(token_file), token): node
            for node in nodes
        }
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout) if refs else ([], [])
        for ref in ready:
            node = refs[ref]
            try:
                problem = ray.get(ref)
            except ray.exceptions.RayError as error:
                problem = f"the check failed there: {_one_line(error)}"
            if problem is not None:
                raise ExecutorError(
                    f"node {_node_name(node)} cannot read the output folder {path} ({problem}); run "
                    "folders must be on a file system every node of the cluster mounts at the same path"
                )
        if late:
            raise ExecutorError(
                f"node {_node_name(refs[late[0]])} did not check the output folder {path} within "
                f"{timeout:g} s (every node must read it before the grid starts)"
            )
        ok = True
    finally:
        token_file.unlink(missing_ok=True)
        if not ok and created is not None:
            remove_empty_folders(path, created)


def _read_token(token_file: str, token: str) -> str | None:
    """A storage check task: None if this node reads ``token`` in ``token_file``, else what it sees."""
    name = Path(token_file).name
    try:
        seen = Path(token_file).read_text()
    except FileNotFoundError:
        return f"the check file the driver wrote there, {name}, is not there"
    except OSError as error:
        return f"the check file the driver wrote there, {name}, cannot be read: {error.strerror or error}"
    return None if seen == token else f"the check file {name} holds something else there"


def _node_name(node: dict[str, Any]) -> str:
    return f"{node.get('NodeManagerAddress', '?')} (id {node['NodeID'][:12]})"
