"""Runs that processes sharing an output folder take in turns: each process trains the runs it can
claim (a run folder's lock, :meth:`RunDir.claim`), reads back those already finished, and leaves a
run another process holds to it, waiting for it once its own are done, or skipping it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..version import code_version
from .folder import RunDir

logger = logging.getLogger(__name__)

#: How this process claims a run folder until ``owned`` closes: True if it owns the run now, False
#: if another process does and ``wait`` is False (with ``wait``, it blocks until that one lets go).
Claim = Callable[[RunDir, contextlib.ExitStack, bool], bool]


def claim_alone(folder: RunDir, owned: contextlib.ExitStack, wait: bool) -> bool:
    """:data:`Claim` for a process that trains a run by itself: the folder's lock, let go of (and a
    finished run's lock file removed) when ``owned`` closes."""
    lock = folder.claim(wait)
    if lock is None:
        return False
    owned.callback(folder.let_go, lock)
    return True


def in_turns(
    folders: Sequence[RunDir],
    work: Callable[[list[int]], Sequence[dict[str, Any]]],
    *,
    claim: Claim = claim_alone,
    skip_held: bool = False,
) -> list[dict[str, Any] | None]:
    """The summary of each run in ``folders``, in order: read back where the run is finished, else
    what ``work`` returns for the positions of the runs this process owns, called once a turn while
    it owns them. A run another process holds is left to it: waited for in the next turn (and read
    back if that process finished it), or, with ``skip_held``, its summary is None."""
    summaries: dict[int, dict[str, Any] | None] = {}
    waiting, wait = list(range(len(folders))), False
    while waiting:
        with contextlib.ExitStack() as owned:
            mine, held = [], []
            for i in waiting:
                folder = folders[i]
                if not folder.is_finished() and not claim(folder, owned, wait):
                    held.append(i)
                elif folder.is_finished():  # perhaps by the process that held it
                    summaries[i] = folder.read_summary()
                    logger.info("reusing %s, finished%s", folder.path, other_code(summaries[i]))
                else:
                    mine.append(i)
            if mine:
                summaries.update(zip(mine, work(mine)))
        for i in held:
            doing = "skipped" if skip_held else "waiting for it"
            logger.info("%s: another process is training it; %s", folders[i].path, doing)
        if skip_held:
            summaries.update((i, None) for i in held)
            break
        waiting, wait = held, True
    return [summaries[i] for i in range(len(folders))]


def other_code(summary: dict[str, Any]) -> str:
    """What a reused run's note adds where the run was trained, wholly or in part, by other code
    than this (:func:`~labelemb.version.code_version`): its numbers are that code's."""
    parts = summary.get("trained_by") or [{"labelemb": summary.get("labelemb"), "from_step": 0}]
    if all(part["labelemb"] == code_version() for part in parts):
        return ""
    if len(parts) == 1:
        recorded = parts[0]["labelemb"]
        made_by = f"by labelemb {recorded}" if recorded else "by a labelemb that recorded no version"
    else:  # resumed under other code: each part's code, as summary.json's trained_by holds them
        named = [f"{part['labelemb'] or 'unrecorded code'} from step {part['from_step']}" for part in parts]
        made_by = "in parts, by labelemb " + ", then ".join(named)
    return (
        f" {made_by} (this is {code_version()}): its numbers are that code's; "
        "remove the folder, or choose another --output-dir, to train it with this one"
    )
