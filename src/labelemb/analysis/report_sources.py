"""Which runs a report's analysis was made from, so that ``labelemb report --no-analysis`` never
shows the analysis of runs that have since been trained again, removed or replaced.

A report that analyses its runs records, beside its analysis files, a SHA-256 of the file each
run's label representation is read from (its saved representation, or its weights where the
representation is their mean softmax). A report that reuses the analysis checks them first and
refuses, naming the runs and the fix, when one differs.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.files.digest import path_digest
from ..rundir import MODEL_FILE, TENSORS_FILE, write_text

#: ``{"<method>/seed<N>": sha256}`` of the runs the analysis in the same folder was made from.
SOURCES_FILE = "analysed-runs.json"
#: The files a report reuses: with any of them present, the sources must be known and current.
CACHED_FILES = ("analysis.json", "wordnet-all-seeds.json", "facets-all-seeds.json")


class StaleAnalysis(ValueError):
    """The analysis a report would reuse was made from other runs than those in the folder now."""


def run_digest(run_dir: Path) -> str:
    """SHA-256 of the file the run's label representation comes from ("" for a run with neither)."""
    for name in (TENSORS_FILE, MODEL_FILE):
        if (run_dir / name).is_file():
            return path_digest(run_dir / name).hex()
    return ""


def _key(run_dir: Path) -> str:
    return f"{run_dir.parent.name}/{run_dir.name}"


def record_analysed_runs(analysis_dir: Path, run_dirs: list[Path]) -> None:
    """Write which runs (and which of their files) the analysis in ``analysis_dir`` was made from."""
    sources = {_key(run_dir): run_digest(run_dir) for run_dir in run_dirs}
    write_text(analysis_dir / SOURCES_FILE, json.dumps(sources, indent=2, sort_keys=True) + "\n")


def check_analysis_current(analysis_dir: Path, run_dirs: list[Path], experiment_dir: Path) -> None:
    """Raise :class:`StaleAnalysis` unless the analysis in ``analysis_dir`` (if any) was made from
    the runs in ``run_dirs`` as they are now. Runs added since were not analysed, which the page says."""
    if not any((analysis_dir / name).is_file() for name in CACHED_FILES):
        return  # nothing to reuse: every method says it has not been analysed
    fix = f"run `labelemb report {experiment_dir}` without --no-analysis to analyse them again"
    path = analysis_dir / SOURCES_FILE
    if not path.is_file():
        raise StaleAnalysis(f"{analysis_dir} does not record which runs it was made from; {fix}")
    sources = json.loads(path.read_text())
    now = {_key(run_dir): run_digest(run_dir) for run_dir in run_dirs}
    changed = sorted(key for key, digest in sources.items() if now.get(key) != digest)
    if changed:
        listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise StaleAnalysis(
            f"the analysis in {analysis_dir} was made from runs that have changed or gone since "
            f"({listed}); {fix}"
        )
