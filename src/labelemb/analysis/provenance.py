"""Which code trained a comparison's runs: the line under comparison.md's tables that names each
labelemb version and how many runs it trained, wholly or in part (a run resumed under other code
has a part per code: ``summary.json``'s ``trained_by``), and the warning for runs any part of
which uncommitted code trained (a ``.dirty`` build), whose numbers no commit records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

#: How a version says it was built from a checkout with uncommitted changes (labelemb.version).
UNCOMMITTED = ".dirty"


def run_codes(summary: Mapping[str, Any]) -> list[str | None]:
    """The code of each part of a run, first to last (None: a part that recorded none)."""
    parts = summary.get("trained_by") or [{"labelemb": summary.get("labelemb")}]
    return [part.get("labelemb") for part in parts]


def uncommitted_runs(runs: Mapping[str, Sequence[Any]]) -> list[str]:
    """``method seed N`` for each run of ``runs`` (method -> its :class:`~.compare.Run` list) any
    part of which uncommitted code trained."""
    return [
        f"{method} seed {run.seed}"
        for method, method_runs in runs.items()
        for run in method_runs
        if any(code and code.endswith(UNCOMMITTED) for code in run_codes(run.summary))
    ]


def code_note(runs: Mapping[str, Sequence[Any]]) -> str:
    """The line naming each code that trained ``runs`` and how many runs it had a part in, most
    first; and, where any run was trained by uncommitted code, which ones and what to do."""
    counts = Counter(
        code or "(not recorded)"
        for method_runs in runs.values()
        for run in method_runs
        for code in dict.fromkeys(run_codes(run.summary))
    )
    if not counts:
        return ""
    most_first = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{code} ({count})" for code, count in most_first)
    note = f"The code that trained the runs (how many it trained, wholly or in part): labelemb {named}."
    uncommitted = uncommitted_runs(runs)
    if uncommitted:
        note += "\n\n" + uncommitted_warning(uncommitted)
    return note


def uncommitted_warning(uncommitted: Sequence[str]) -> str:
    """What a comparison says of its runs trained, wholly or in part, by uncommitted code."""
    return (
        f"Warning: {len(uncommitted)} run(s) were trained, wholly or in part, by uncommitted code (a "
        f"{UNCOMMITTED} build), so no commit records what made their numbers: {', '.join(uncommitted)}. "
        "Train them again from a commit (remove their folders and run the comparison again)."
    )
