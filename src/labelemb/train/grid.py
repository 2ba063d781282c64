"""Many runs at once: every (method, seed) of a comparison, in parallel processes."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .plan import checked_runs, plan_run
from .trainer import plan_runs, train, train_seeds, train_unless_held


def _train_quietly(config_json: dict[str, Any], threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    config = RunConfig.model_validate(config_json)
    with checked_runs([plan_run(config)]):  # by the grid that sent it, before any run trained
        return train(config)


def run_grid(
    configs: list[RunConfig], *, jobs: int = 1, progress: bool = True, batched: bool = False
) -> list[dict[str, Any]]:
    """Train every config that has no finished run yet and return all summaries, in order.

    Finished runs are read back, so an interrupted comparison resumes where it stopped (and a
    half-done run resumes from its checkpoint). A run another process is training is left to it
    and read back once it is done. With ``jobs > 1`` runs go to separate processes, each with an
    equal share of the CPU threads; one progress bar counts finished runs. With ``batched`` the
    seeds of each method train side by side (see :mod:`labelemb.train.stacked`), one bar per method.
    """
    if batched:
        # Each method's seeds side by side in this process (parallel jobs would compete for the cores).
        return train_seeds(configs, batched=True, progress=progress)
    quiet = [c.model_copy(update={"train": c.train.model_copy(update={"progress": False})}) for c in configs]
    # Every run is checked here, before any trains; the trainer takes these plans as checked.
    plans = plan_runs(quiet)
    todo = [i for i, plan in enumerate(plans) if not plan.folder.is_finished()]
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    with checked_runs(plans):
        for i in set(range(len(configs))) - set(todo):
            summaries[i] = train(quiet[i])  # finished: returns the saved summary
        with RunCounter(len(configs), len(configs) - len(todo), progress) as counter:
            if jobs <= 1:
                held = []
                for i in todo:
                    counter.starting(configs[i])
                    summaries[i] = train_unless_held(quiet[i])
                    if summaries[i] is None:
                        held.append(i)  # another process trains it: come back to it at the end
                    else:
                        counter.finished(configs[i])
                for i in held:
                    summaries[i] = train(quiet[i])
                    counter.finished(configs[i])
            else:
                threads = max(1, (os.cpu_count() or 1) // jobs)
                # spawn, not fork: forking a process that already ran torch's thread pools can hang.
                with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                    futures = {
                        pool.submit(_train_quietly, quiet[i].model_dump(mode="json"), threads): i
                        for i in todo
                    }
                    for future in as_completed(futures):
                        summaries[futures[future]] = future.result()
                        counter.finished(configs[futures[future]])
    return [s for s in summaries if s is not None]


class RunCounter:
    """Counts a comparison's finished runs: a bar on a terminal, else a line per finished run."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.terminal = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=done, desc="runs", disable=not self.terminal)

    def starting(self, config: RunConfig) -> None:
        self.bar.set_postfix_str(f"{config.method.name} seed {config.seed}")

    def finished(self, config: RunConfig) -> None:
        self.done += 1
        self.bar.update(1)
        if self.enabled and not self.terminal:
            print(f"finished {config.run_dir()} ({self.done}/{self.total} runs)", file=sys.stderr, flush=True)

    def __enter__(self) -> RunCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
