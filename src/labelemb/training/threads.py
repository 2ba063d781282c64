"""How many CPU threads a command trains with, on a machine other processes may be using.

torch starts one OpenMP thread per core, and its threads spin while they wait for each other. If
another process keeps a core busy, every parallel region waits for the thread that lost its core:
on a 2-core machine with one busy core the demo took 17.8 s with 2 threads and 10.0 s with one
(9.5 s with one and 8.5 s with two on the idle machine; README, "Threads"). So the command line
looks, once, at how busy the cores are when training starts (not before: a command that stops at
a mistake in its input says that in one line, and nothing else), and leaves the busy ones alone.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from .determinism import ask_cublas_for_a_fixed_workspace

logger = logging.getLogger(__name__)


#: MKL's strict reproducibility mode (``MKL_CBWR``): matrix products whose bits do not depend on
#: the number of threads. Without it, on an AVX-512 AMD EPYC, a 10 x 100 by 100 x 32 product (a
#: 10-class head's weight gradient) rounded differently with 1 and 2 threads, so the same command
#: gave other numbers on a busy machine, where the command line trains with fewer threads.
REPRODUCIBLE_MKL = "AUTO,STRICT"


def same_numbers_at_any_thread_count() -> None:
    """Ask MKL (where torch's matrix products use it) for results that do not depend on the number
    of threads, unless ``MKL_CBWR`` is set already. MKL reads the variable at its first product, so
    this runs before any: at the command line's start, and in a worker before its first unit."""
    os.environ.setdefault("MKL_CBWR", REPRODUCIBLE_MKL)
    # cuBLAS reads its workspace setting when CUDA starts it: before any run's first product.
    ask_cublas_for_a_fixed_workspace()


def busy_cores(interval: float = 0.2) -> float | None:
    """How many cores other processes kept busy during ``interval`` seconds (this one sleeps then);
    None where ``/proc/stat`` is not there (not Linux)."""
    try:
        first = _cpu_times()
        time.sleep(interval)
        second = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle and iowait
    if total <= 0:
        return None
    return (total - idle) / total * _usable_cores()


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def free_core_threads(torch_threads: int, busy: float | None) -> int:
    """torch's thread count, less the cores ``busy`` with other processes (at least 1)."""
    if busy is None:
        return torch_threads
    free = round(_usable_cores() - busy)
    return max(1, min(torch_threads, free))


def use_free_cores() -> None:
    """Train with as many threads as there are idle cores, unless the user chose
    (``OMP_NUM_THREADS``, or ``train.threads``, which the trainer applies later and which wins)."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    threads = torch.get_num_threads()
    busy = busy_cores()
    chosen = free_core_threads(threads, busy)
    if chosen < threads:
        logger.info(
            "%.1f of %d cores are busy with other processes: training with %d thread(s) instead of %d "
            "(train.threads=N or OMP_NUM_THREADS=N to choose)",
            busy,
            _usable_cores(),
            chosen,
            threads,
        )
        torch.set_num_threads(chosen)


#: Whether this process should look at the cores when it next starts training (the command line asks).
_free_cores_asked = False


def use_free_cores_when_training() -> None:
    """Ask for :func:`use_free_cores` at the start of the next training of this process, once."""
    global _free_cores_asked
    _free_cores_asked = True


def use_free_cores_if_asked() -> None:
    """:func:`use_free_cores` once, if the command line asked for it; the trainer calls this when
    the data is read and training is about to start."""
    global _free_cores_asked
    if _free_cores_asked:
        _free_cores_asked = False
        use_free_cores()
