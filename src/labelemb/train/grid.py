"""Many runs at once: every (method, seed) of a comparison, in parallel processes."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import torch
from tqdm.auto import tqdm

from ..rundir import RunDir
from .config import RunConfig
from .trainer import train, train_seeds


def _train_quietly(config_json: dict[str, Any], threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return train(RunConfig.model_validate(config_json))


def run_grid(
    configs: list[RunConfig], *, jobs: int = 1, progress: bool = True, batched: bool = False
) -> list[dict[str, Any]]:
    """Train every config that has no finished run yet and return all summaries, in order.

    Finished runs are read back, so an interrupted comparison resumes where it stopped (and a
    half-done run resumes from its checkpoint). With ``jobs > 1`` runs go to separate processes,
    each with an equal share of the CPU threads; one progress bar counts finished runs. With
    ``batched`` the seeds of each method train side by side (see :mod:`labelemb.train.stacked`).
    """
    quiet = [c.model_copy(update={"train": c.train.model_copy(update={"progress": False})}) for c in configs]
    if batched:
        # Each method's seeds side by side in this process (parallel jobs would compete for the cores).
        return train_seeds(quiet, batched=True, progress=progress)
    todo = [i for i, c in enumerate(quiet) if not RunDir(c.run_dir()).is_finished()]
    summaries: list[dict[str, Any] | None] = [None] * len(configs)
    for i in set(range(len(configs))) - set(todo):
        summaries[i] = train(quiet[i])  # finished: returns the saved summary
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="runs", disable=not progress)
    with bar:
        if jobs <= 1:
            for i in todo:
                bar.set_postfix_str(f"{configs[i].method.name} seed {configs[i].seed}")
                summaries[i] = train(quiet[i])
                bar.update(1)
        else:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            # spawn, not fork: forking a process that already ran torch's thread pools can hang.
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures = {
                    pool.submit(_train_quietly, quiet[i].model_dump(mode="json"), threads): i for i in todo
                }
                for future in as_completed(futures):
                    summaries[futures[future]] = future.result()
                    bar.update(1)
    return [s for s in summaries if s is not None]
