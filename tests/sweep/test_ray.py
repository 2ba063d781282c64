"""``compare --executor ray`` (labelemb.sweep.ray_executor) against a real Ray cluster on this machine.

The cluster (a head and a second worker node, one CPU and no GPU each) and the driver run inside a private
network and PID namespace (``unshare -n -p``, loopback up): Ray puts a cluster of more than one
node on the machine's network address, and these tests may talk to loopback only. The namespace
is also the teardown: when its first process ends, the kernel kills every process in it, so no
Ray process outlives the fixture (``ray stop`` would also find Ray processes outside it).

The driver is this file run as a script (``python tests/sweep/test_ray.py grid|storage ...``): it runs
the grids and writes what it saw to a JSON file the tests read.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

#: The tiny grid: 2 methods x 2 seeds on the embedded digits, 2 epochs each.
CONFIG = """\
experiment: tiny
data: {name: digits}
model: {name: mlp, hidden: [32]}
train: {epochs: 2, progress: false}
"""
METHODS, SEEDS = ["onehot", "label_embedding"], [0, 1]
#: The run killed mid-run: long enough (about 2 s of training) that the kill lands before its end.
KILLED_EPOCHS = 30
GCS_PORT = 6379  # in the namespace's own network stack: nothing else there to collide with
#: The grid of tests/helpers/fault_runs.py's failing runs: seed 1 raises, seed 2 runs out of memory once,
#: seed 3 always.
FAULTY_GRID = ("--methods", "onehot", "--seeds", "0-3")


# ---------------------------------------------------------------------------- the cluster fixture


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> dict[str, Any]:
    """Start a head and a worker node in a private namespace, run the driver's grids there, then a
    third node that sees another file system at one folder and the storage check; what the driver
    saw, with the folders it wrote in."""
    if importlib.util.find_spec("ray") is None:
        pytest.fail('Ray is not installed: these tests need the ray extra (pip install -e ".[ray]")')
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail(
            "tests/sweep/test_ray.py needs `unshare` (util-linux) to make a private network namespace"
        )
    probe = subprocess.run(
        [unshare, "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.fail(
            "tests/sweep/test_ray.py must make a private network and PID namespace (unshare -n -p, as "
            "root or with CAP_SYS_ADMIN) to run a Ray cluster on loopback only, and cannot: "
            + probe.stderr.strip()
        )
    work = tmp_path_factory.mktemp("ray")
    (work / "tiny.yaml").write_text(CONFIG)
    hidden = work / "hidden"  # the third node mounts an empty file system here
    hidden.mkdir()
    # Ray's session folders hold unix sockets, whose paths must stay short.
    temp = Path(tempfile.mkdtemp(prefix="lbray", dir="/tmp"))
    python, ray = sys.executable, str(Path(sys.executable).with_name("ray"))
    me = str(Path(__file__).resolve())
    # No GPUs, on any machine: the tests of CUDA runs need a cluster without them.
    start = f"{ray} start --num-cpus 1 --num-gpus 0 --temp-dir {temp} --disable-usage-stats"
    script = f"""
set -euo pipefail
{python} {me} lo-up
{start} --head --port {GCS_PORT} --include-dashboard false > {temp}/head.log 2>&1
{start} --address 127.0.0.1:{GCS_PORT} > {temp}/worker.log 2>&1
CUDA_VISIBLE_DEVICES= {python} {me} grid {work}
unshare -m bash -c 'mount -t tmpfs tmpfs {hidden} && exec {start} --address 127.0.0.1:{GCS_PORT}' \\
  > {temp}/hidden-node.log 2>&1
{python} {me} storage {work}
"""
    env = {
        **os.environ,
        # A cluster of our own token: nothing read from or written to ~/.ray.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_TMPDIR": str(temp),  # the embedded Ray's session folder too
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RAY_ADDRESS", None)
    began = time.monotonic()
    try:
        # --kill-child: if this test is killed, the namespace's first process dies, and with it the cluster.
        done = subprocess.run(
            [unshare, "--kill-child", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        logs = {p.name: p.read_text(errors="replace")[-2000:] for p in temp.glob("*.log")}
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    if done.returncode != 0:
        pytest.fail(
            f"the cluster script failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n"
            + "\n".join(f"--- {name}\n{text}" for name, text in logs.items())
        )
    results = json.loads((work / "grid.json").read_text())
    results.update(json.loads((work / "storage.json").read_text()))
    results.update(work=work, seconds=time.monotonic() - began)
    return results


# ---------------------------------------------------------------------------- the tests


def test_grid_on_a_cluster_equals_the_local_grid(cluster, tmp_path):
    """Every run of the grid through --ray-address (2 nodes) has the metrics of the same grid run
    by the local executor, exactly (timings aside), and compare wrote its table."""
    assert cluster["grid"]["rc"] == 0, cluster["grid"]["stderr"]
    ray_root = cluster["work"] / "grid" / "tiny"
    local_root = tmp_path / "tiny"
    assert compare(cluster["work"] / "tiny.yaml", tmp_path, "--executor", "local")[0] == 0
    for method in METHODS:
        for seed in SEEDS:
            assert metrics(ray_root / method / f"seed{seed}") == metrics(local_root / method / f"seed{seed}")
    assert (ray_root / "comparison.md").is_file()
    # The storage check's token is gone; nothing but the experiment is left in the output folder.
    assert sorted(p.name for p in (cluster["work"] / "grid").iterdir()) == ["tiny"]


def test_tune_on_a_cluster_draws_and_scores_the_trials_the_local_executor_does(cluster, tmp_path):
    """`labelemb tune --executor ray`: trials on both nodes report their checks to the study in the
    experiment folder, and the study equals the same tune's on this machine, trial for trial."""
    on_ray = cluster["tune"]
    assert on_ray["rc"] == 0, on_ray["stderr"]
    local = tune(cluster["work"] / "tiny.yaml", tmp_path)
    assert local["rc"] == 0, local["stderr"]
    ray_trials = on_ray["record"]["methods"]["label_smoothing"]["trials"]
    local_trials = local["record"]["methods"]["label_smoothing"]["trials"]
    assert len(ray_trials) == 4 and all(t["checks"] for t in ray_trials)
    assert [(t["params"], t["value"], t["checks"]) for t in ray_trials] == [
        (t["params"], t["value"], t["checks"]) for t in local_trials
    ]


def test_embedded_ray_without_an_address(cluster, tmp_path):
    """--executor ray without an address trains on a Ray of its own, started and stopped for the
    command (beside the running cluster, which it must not join)."""
    assert cluster["embedded"]["rc"] == 0, cluster["embedded"]["stderr"]
    assert cluster["embedded"]["nodes"] == 1
    assert compare(cluster["work"] / "tiny.yaml", tmp_path, "--methods", "onehot", "--seeds", "0")[0] == 0
    run = "tiny/onehot/seed0"
    assert metrics(cluster["work"] / "embedded" / run) == metrics(tmp_path / run)


def test_a_worker_killed_mid_run_resumes_from_its_checkpoint(cluster, tmp_path):
    """The Ray worker training a run is killed after its first checkpoint: Ray retries the task,
    which resumes from the checkpoint (the records before it are the first try's, byte for byte),
    and the run's numbers equal an uninterrupted run's."""
    killed = cluster["killed"]
    assert killed["rc"] == 0, killed["stderr"]
    assert killed["pids"], "no Ray worker was training the run when its checkpoint appeared"
    assert not killed["finished_before_kill"] and killed["records_at_kill"] < KILLED_EPOCHS
    run = cluster["work"] / "killed" / "tiny" / "label_embedding" / "seed0"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == KILLED_EPOCHS
    assert json.loads((run / "summary.json").read_text())["epochs_trained"] == KILLED_EPOCHS
    # Resumed, not started afresh: the first record (in every checkpoint) is the first try's, its
    # timings included; a fresh start would have timed it anew.
    assert lines[0] == killed["lines_at_kill"][0]
    code, _ = compare(
        cluster["work"] / "tiny.yaml",
        tmp_path,
        "--methods",
        "label_embedding",
        f"train.epochs={KILLED_EPOCHS}",
    )
    assert code == 0
    assert metrics(run) == metrics(tmp_path / "tiny" / "label_embedding" / "seed0")


def test_failed_runs_on_a_cluster_are_listed_and_the_others_train(cluster):
    """tests/helpers/fault_runs.py's grid on the cluster's two workers: seed 1's error and seed 3's
    out-of-memory are listed at the end with exit 1 (before, seed 1's error ended the compare);
    seed 2, out of memory once beside the others, is tried again alone and trains; seed 0 trains."""
    faults = cluster["faults"]
    assert faults["rc"] == 1, faults["stderr"]
    table = faults["stdout"][faults["stdout"].index("2 of 4 run(s) failed") :]
    assert "| onehot seed 1 |" in table and "raised RuntimeError: a bug that seed 1 meets" in table
    assert "| onehot seed 3 |" in table and "OutOfMemoryError: CUDA out of memory" in table
    assert "| onehot seed 2 |" not in table
    retried = sorted(line for line in faults["stderr"].splitlines() if "once more alone" in line)
    alone = "ran out of memory beside other runs: trying it once more alone"
    assert retried == [f"onehot seed {seed} {alone}" for seed in (2, 3)]
    runs = cluster["work"] / "faults" / "faults" / "onehot"
    finished = [(runs / f"seed{seed}" / "summary.json").is_file() for seed in range(4)]
    assert finished == [True, False, True, False]


def test_a_node_without_the_output_folder_is_refused(cluster):
    """A node that does not see the output folder (another file system mounted there): one line
    naming the folder and the node, exit 2, before any run started, and no folder left behind."""
    storage = cluster["storage"]
    assert storage["rc"] == 2
    line = one_line(storage["stderr"])
    folder = str(cluster["work"] / "hidden" / "out")
    assert folder in line and "cannot read the output folder" in line
    assert f"node 127.0.0.1 (id {storage['hidden_node'][:12]})" in line
    assert storage["left"] == []


def test_a_cluster_without_gpus_refuses_cuda_runs(cluster):
    assert "has no GPUs" in cluster["no_gpus"] and "device cuda" in cluster["no_gpus"]


def test_a_driver_without_cuda_asks_the_cluster_for_its_gpus(cluster):
    """`compare --device cuda --executor ray` from a driver without CUDA: the cluster's resources
    answer (before, the driver refused with its own "CUDA is not available here"). This cluster of
    two CPU nodes has none, so the refusal names it and its 0 GPUs: one line, exit 2, nothing written."""
    run = cluster["cuda_driver"]
    assert not run["driver_cuda"]  # the fixture hides any GPU from the driver
    assert run["rc"] == 2
    line = one_line(run["stderr"])
    assert f"the Ray cluster at 127.0.0.1:{GCS_PORT} has no GPUs (2 node(s): 2 CPUs, 0 GPUs)" in line
    assert "not available here" not in line
    assert not run["written"]


def test_ray_not_installed_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    began = time.monotonic()
    code, err = compare(tmp_path / "none.yaml", tmp_path / "out", "--executor", "ray", text=CONFIG)
    assert code == 2 and time.monotonic() - began < 10
    assert 'not installed: pip install "labelemb[ray]"' in one_line(err)
    assert not (tmp_path / "out").exists()


def test_an_address_nothing_listens_on_is_one_line(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    began = time.monotonic()
    code, err = compare(
        tmp_path / "c.yaml",
        tmp_path / "out",
        "--executor",
        "ray",
        "--ray-address",
        f"127.0.0.1:{port}",
        text=CONFIG,
    )
    assert code == 2 and time.monotonic() - began < 10
    assert f"the Ray cluster at 127.0.0.1:{port} does not answer" in one_line(err)
    assert not (tmp_path / "out").exists()


def test_an_address_that_does_not_answer_in_time_is_one_line():
    """Something accepts connections there but never answers as Ray's gRPC server does: refused
    after ``connect_timeout`` (30 s for the command; 1 s here)."""
    from labelemb.sweep.executors import ExecutorError
    from labelemb.sweep.ray_executor import RayExecutor

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody reads or writes
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        with pytest.raises(ExecutorError, match="does not answer within 1 s"):
            RayExecutor(address, connect_timeout=1).run([tiny_unit()], lambda i, s: None)
        assert time.monotonic() - began < 5


def test_a_node_that_does_not_see_the_output_folder_refuses_its_run(tmp_path):
    """A node that joined after the storage check and lacks the shared file system: its task
    refuses rather than writing the run on a disk of its own."""
    from labelemb.assembly import plan_run
    from labelemb.sweep.executors import ExecutorError, Unit
    from labelemb.sweep.ray_workers import train_unit
    from labelemb.training import build_config

    missing = tmp_path / "not-mounted-here"
    config = build_config({"data": {"name": "digits"}, "output_dir": str(missing)}, [])
    with pytest.raises(ExecutorError, match=f"does not see the output folder {missing}"):
        train_unit(Unit.of([plan_run(config)]), str(tmp_path))
    assert not missing.exists()


@pytest.mark.parametrize("address", ["nowhere", "ray://host", "host:port"])
def test_a_malformed_address_is_refused_at_once(address):
    from labelemb.sweep.executors import ExecutorError
    from labelemb.sweep.ray_executor import RayExecutor

    with pytest.raises(ExecutorError, match="is not an address"):
        RayExecutor(address)


# ---------------------------------------------------------------------------- helpers


def compare(
    config: Path, output: Path, *args: str, text: str | None = None, echo: bool = False
) -> tuple[int, str]:
    """``labelemb compare`` in this process (of the tiny grid unless ``--methods`` is in ``args``;
    ``text`` written to ``config`` first): its exit code and what it wrote to stderr (its stdout
    goes to this process's with ``echo``, else nowhere)."""
    from labelemb.cli import main

    if text is not None:
        config.write_text(text)
    argv = ["compare", "--config", str(config), "--output-dir", str(output), "--no-progress"]
    if "--methods" not in args:
        argv += ["--methods", ",".join(METHODS), "--seeds", ",".join(map(str, SEEDS))]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sys.stdout if echo else io.StringIO()):
        code = main([*argv, *args])
    return code, err.getvalue()


def tune(config: Path, output: Path, *args: str) -> dict[str, Any]:
    """``labelemb tune`` of label_smoothing on the tiny setting, 2 trials a round, pruning on (the
    workers report every check to the study's journal): its exit code, stderr and tuning record."""
    from labelemb.cli import main

    argv = ["tune", "--config", str(config), "--output-dir", str(output), "--no-progress", "--prune"]
    argv += ["--methods", "label_smoothing", "--trials", "4", "--seeds", "1", "--jobs", "2"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([*argv, *args])
    record = output / "tiny" / "tuning.json"
    return {
        "rc": code,
        "stderr": err.getvalue(),
        "record": json.loads(record.read_text()) if record.exists() else None,
    }


def tiny_unit() -> Any:
    from labelemb.sweep.executors import Unit
    from labelemb.training import build_config

    return Unit.of([build_config({"data": {"name": "digits"}, "train": {"progress": False}}, [])])


def metrics(run: Path) -> list[dict[str, Any]]:
    """A run's evaluation records without their timings."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if not k.endswith("seconds")} for record in records]


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


# ---------------------------------------------------------------------------- the driver (in the namespace)


def _lo_up() -> None:
    """``ip link set lo up``, without needing iproute2."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, request)[:18])[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))


def _task_workers() -> list[int]:
    """The Ray workers training a unit now (their title is ``ray::LabelembWorker.train``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(b"ray::LabelembWorker.train"):
                    pids.append(int(entry.name))
    return pids


def _kill_after_first_checkpoint(run: Path, seen: dict[str, Any]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.005)
    seen["finished_before_kill"] = (run / "summary.json").exists()
    seen["pids"] = _task_workers()
    for pid in seen["pids"]:
        os.kill(pid, signal.SIGKILL)
    seen["lines_at_kill"] = (run / "metrics.jsonl").read_text().splitlines()
    seen["records_at_kill"] = len(seen["lines_at_kill"])


def _driver_grid(work: Path) -> None:
    import ray
    import torch

    from labelemb.assembly import plan_run
    from labelemb.sweep.executors import ExecutorError, Unit
    from labelemb.sweep.ray_executor import RayExecutor
    from labelemb.training import build_config

    address = f"127.0.0.1:{GCS_PORT}"
    config = work / "tiny.yaml"
    results: dict[str, Any] = {}
    code, err = compare(config, work / "grid", "--executor", "ray", "--ray-address", address)
    results["grid"] = {"rc": code, "stderr": err}

    results["tune"] = tune(config, work / "tuned", "--executor", "ray", "--ray-address", address)

    cuda = build_config({"data": {"name": "digits"}, "train": {"device": "cuda", "progress": False}}, [])
    try:
        RayExecutor(address).run([Unit.of([plan_run(cuda)])], lambda i, s: None)
        results["no_gpus"] = "no error"
    except ExecutorError as error:
        results["no_gpus"] = str(error)
    # This driver has no CUDA: the cluster's resources, not this machine's, decide on --device cuda.
    out = work / "cuda"
    code, err = compare(config, out, "--executor", "ray", "--ray-address", address, "--device", "cuda")
    written = out.exists()
    results["cuda_driver"] = {
        "rc": code,
        "stderr": err,
        "written": written,
        "driver_cuda": torch.cuda.is_available(),
    }

    run = work / "killed" / "tiny" / "label_embedding" / "seed0"
    seen: dict[str, Any] = {}
    killer = threading.Thread(target=_kill_after_first_checkpoint, args=(run, seen), daemon=True)
    killer.start()
    code, err = compare(
        config,
        work / "killed",
        "--executor",
        "ray",
        "--ray-address",
        address,
        "--methods",
        "label_embedding",
        f"train.epochs={KILLED_EPOCHS}",
    )
    killer.join(timeout=5)
    results["killed"] = {"rc": code, "stderr": err, **seen}

    # A grid with failing runs (tests/helpers/fault_runs.py) on the cluster's two workers.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, where the helpers are
    from helpers.fault_runs import write_project

    project = write_project(work / "faulty")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code, err = compare(
            project, work / "faults", "--executor", "ray", "--ray-address", address, *FAULTY_GRID, echo=True
        )
    results["faults"] = {"rc": code, "stderr": err, "stdout": out.getvalue()}

    nodes: list[int] = []
    real_init = ray.init

    def init(*args: Any, **kwargs: Any) -> Any:
        context = real_init(*args, **kwargs)
        nodes.append(len([n for n in ray.nodes() if n["Alive"]]))
        return context

    ray.init = init
    code, err = compare(config, work / "embedded", "--executor", "ray", "--methods", "onehot", "--seeds", "0")
    ray.init = real_init
    results["embedded"] = {"rc": code, "stderr": err, "nodes": nodes[0] if nodes else 0}
    ray.init(address=address, log_to_driver=False)
    results["nodes"] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    ray.shutdown()
    (work / "grid.json").write_text(json.dumps(results))


def _driver_storage(work: Path) -> None:
    import ray

    ray.init(address=f"127.0.0.1:{GCS_PORT}", log_to_driver=False)
    before = set(json.loads((work / "grid.json").read_text())["nodes"])
    [hidden_node] = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] not in before]
    ray.shutdown()
    code, err = compare(
        work / "tiny.yaml",
        work / "hidden" / "out",
        "--executor",
        "ray",
        "--ray-address",
        f"127.0.0.1:{GCS_PORT}",
    )
    left = sorted(str(p) for p in (work / "hidden").iterdir())
    storage = {"rc": code, "stderr": err, "hidden_node": hidden_node, "left": left}
    (work / "storage.json").write_text(json.dumps({"storage": storage}))


if __name__ == "__main__":
    phase = sys.argv[1]
    if phase == "lo-up":
        _lo_up()
    elif phase == "grid":
        _driver_grid(Path(sys.argv[2]))
    elif phase == "storage":
        _driver_storage(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown phase {phase}")
