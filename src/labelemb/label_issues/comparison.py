"""Which label method's cross-fitted models find the wrong labels best: the search of
:func:`~.finding.find_label_issues` made for each (method, seed), each list judged where the truth
is known, and its figures over seeds side by side, with Welch's p against the first method
(``labelemb label-issues --methods ... --seeds ...``, :func:`compare_label_issues`).

A list whose folder already holds a finished search of the same folds, detector, filter, split
and dynamics, each of whose runs was trained with this search's config, is read back from its
``label_issues.json``, not searched again: an interrupted comparison resumes at its first
unfinished list. The table (:mod:`.comparison_table`) is written beside the lists."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.report_noise import LABEL_ISSUES_PAGE
from ..assembly import data_of
from ..config import RunConfig
from ..experiment.setting import ConfigSource, Seeds, seed_numbers
from ..rundir import RunDir
from ..rundir.files import write_text
from .comparison_table import comparison_rows, markdown_table
from .cross_fit import fold_config
from .detectors import DEFAULT_DETECTOR, DEFAULT_FILTER, check_choices
from .dynamics import dynamics_config
from .finding import _config, _made, find_label_issues, list_folder
from .folds import DEFAULT_FOLDS, LabelIssuesError
from .listing import LIST_CSV, PROBABILITIES_NPZ, SUMMARY_JSON, json_values
from .splits import check_split

#: Said where no list could be judged.
UNJUDGED_LINE = (
    "the truth of these labels is not known (no noise: section, no true-label column): each list is "
    "written, none is judged"
)


@dataclass(repr=False)
class LabelIssuesComparison:
    """The lists of a comparison of label methods (:func:`compare_label_issues`) and their table.

    ``summaries[(method, seed)]`` is each list's ``label_issues.json``, ``folders`` where each list
    is, ``read_back`` the (method, seed) pairs whose finished list was read back rather than
    searched; ``rows`` the table (:func:`.comparison_table.comparison_rows`: each method x detector
    and each method's flagged set, mean, std and Welch's p against the first method of every figure
    over seeds); ``judged`` whether the truth was known; ``markdown`` and ``json_path`` the files."""

    methods: list[str]
    seeds: list[int]
    summaries: dict[tuple[str, int], dict[str, Any]]
    folders: dict[tuple[str, int], Path]
    read_back: list[tuple[str, int]]
    rows: list[dict[str, Any]]
    judged: bool
    markdown: Path
    json_path: Path
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"LabelIssuesComparison(methods={self.methods}, seeds={self.seeds}, "
            f"judged={self.judged}, markdown={str(self.markdown)!r})"
        )

    def table(self) -> str:
        """The table as Markdown (what ``markdown`` holds)."""
        return markdown_table(self.rows, self.methods, self.seeds, self.judged, self.settings)

    def figure(self, method: str, detector: str, name: str) -> dict[str, Any]:
        """One cell: ``name``'s ``values`` (one a seed), ``mean``, ``std`` and ``p`` for ``method``
        and ``detector`` (a detector's name, or ``flagged`` for the filter's flagged set)."""
        for row in self.rows:
            if row["method"] == method and row["detector"] == detector:
                return row["figures"][name]
        raise KeyError(f"no row for method {method!r} and detector {detector!r}")

    def lines(self) -> list[str]:
        """What the terminal shows: the table (or the line saying nothing is judged) and the files."""
        lines = [] if self.judged else [UNJUDGED_LINE]
        lines += [self.table().rstrip("\n"), f"-> {self.markdown}", f"-> {self.json_path}"]
        return lines


def compare_label_issues(
    config: ConfigSource | RunConfig = None,
    *,
    methods: Sequence[str] | None = None,
    seeds: Seeds | None = None,
    folds: int = DEFAULT_FOLDS,
    rank_by: str = DEFAULT_DETECTOR,
    filter_by: str = DEFAULT_FILTER,
    dynamics: bool = False,
    split: str = "train",
    overrides: Sequence[str] = (),
    progress: bool = True,
    **options: Any,
) -> LabelIssuesComparison:
    """Search ``config``'s data set for wrong labels once for each of ``methods`` (default: the
    config's) and each of ``seeds`` (one, an iterable such as ``range(3)``, or a text such as
    ``"0-2"``; default the config's seed), as :func:`~labelemb.find_label_issues` does with the
    other keywords, and compare the lists: for each method x detector, the mean and standard
    deviation over seeds of each judged figure (AUROC, AUPRC, precision at the true count, the
    precision, recall and F1 of the detector's lowest rows as many as cleanlab estimates wrong),
    of the filter's flagged set (precision, recall, F1) and of the minutes taken, each with Welch's
    p against the first method. Writes ``comparison-kFOLDS.md`` and ``.json`` (``-test`` with
    ``split="test"``) into ``OUTPUT_DIR/EXPERIMENT/label-issues/``. A finished list is read back,
    not searched again (see the module docstring). Where the truth is not known, each list is
    written and the table holds the counts and minutes only."""
    check_choices(rank_by, filter_by, dynamics)
    names = _methods(methods)
    runs = _runs(config, names, seeds, overrides, options, progress)
    check_split(split, next(iter(runs.values())).noise is not None)
    choices = {
        "folds": folds,
        "rank_by": rank_by,
        "filter_by": filter_by,
        "dynamics": dynamics,
        "split": split,
    }
    summaries, folders, read_back = _lists(runs, choices, progress)
    first = next(iter(runs.values()))
    used, seed_list = (
        list(dict.fromkeys(method for method, _ in runs)),
        list(dict.fromkeys(s for _, s in runs)),
    )
    judged = all(summary.get("judged") is not None for summary in summaries.values())
    rows = comparison_rows(summaries, used, seed_list, judged)
    settings = {**_settings(first, choices), "methods": used, "seeds": seed_list}
    folder = list_folder(first, folds, split).parent
    stem = f"comparison-k{folds}" + ("" if split == "train" else f"-{split}")
    comparison = LabelIssuesComparison(
        used,
        seed_list,
        summaries,
        folders,
        read_back,
        rows,
        judged,
        folder / f"{stem}.md",
        folder / f"{stem}.json",
        settings,
    )
    _write(comparison)
    return comparison


def _lists(
    runs: dict[tuple[str, int], RunConfig], choices: dict[str, Any], progress: bool
) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[tuple[str, int], Path], list[tuple[str, int]]]:
    """Each (method, seed)'s list, read back where it is finished (:func:`finished_list`), else
    searched: the summaries, the lists' folders and which were read back."""
    folds, split = choices["folds"], choices["split"]
    rank_by, filter_by, dynamics = choices["rank_by"], choices["filter_by"], choices["dynamics"]
    summaries: dict[tuple[str, int], dict[str, Any]] = {}
    folders: dict[tuple[str, int], Path] = {}
    read_back: list[tuple[str, int]] = []
    for (method, seed), run in runs.items():
        start = time.perf_counter()
        summary = finished_list(run, folds, rank_by, filter_by, dynamics, split)
        if summary is None:
            summary = json_values(find_label_issues(run, progress=progress, **choices).summary)
        else:
            read_back.append((method, seed))
        summaries[(method, seed)], folders[(method, seed)] = summary, list_folder(run, folds, split)
        if progress:
            how = "read back" if (method, seed) in read_back else "searched"
            took = time.perf_counter() - start
            print(f"{method}, seed {seed}: {how} in {took:.1f} s -> {folders[(method, seed)]}", flush=True)
    return summaries, folders, read_back


def _methods(methods: Sequence[str] | None) -> list[str]:
    """The methods compared, in order (the first is the one every p is against); refused in one
    line where a name repeats or ``methods`` is a single text rather than a list."""
    if methods is None:
        return []
    if isinstance(methods, str):
        raise LabelIssuesError(
            f"methods={methods!r} is one text: give the methods as a list, e.g. "
            f"methods={[name.strip() for name in methods.split(',') if name.strip()]!r}"
        )
    names = list(methods)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LabelIssuesError(f"methods {names} name {', '.join(repeated)} more than once; name each once")
    if not names:
        raise LabelIssuesError(
            "methods is empty: name at least one method, e.g. ['onehot', 'label_embedding']"
        )
    return names


def _runs(
    config: ConfigSource | RunConfig,
    methods: list[str],
    seeds: Seeds | None,
    overrides: Sequence[str],
    options: dict[str, Any],
    progress: bool,
) -> dict[tuple[str, int], RunConfig]:
    """The run each list's folds train, keyed by (method, seed), every one built before any trains:
    an unknown method or a bad seed is refused before an hour of training, not after it."""
    base = _config(config, overrides, options, None, None, progress)
    numbers = [base.seed] if seeds is None else seed_numbers(seeds)
    if not numbers:
        raise LabelIssuesError("seeds is empty: give at least one seed, e.g. seeds=range(3) or '0-2'")
    runs = {}
    for method in methods or [base.method.name]:
        for seed in numbers:
            runs[(method, seed)] = _config(config, overrides, options, method, seed, progress)
    return runs


def finished_list(
    run: RunConfig, folds: int, rank_by: str, filter_by: str, dynamics: bool, split: str
) -> dict[str, Any] | None:
    """The summary of the finished list of ``run``'s search as asked, read back from its folder;
    None where there is none, it was made otherwise (folds, detector, filter, split, dynamics) or
    any of its runs with another config than this search's, or on data whose content has changed
    since (a file edited under its name; then the search is made, and the trainer says what
    differs)."""
    folder = list_folder(run, folds, split)
    needed = (SUMMARY_JSON, LIST_CSV, PROBABILITIES_NPZ, LABEL_ISSUES_PAGE)  # the page is written last
    if not all((folder / name).exists() for name in needed):
        return None
    summary = json.loads((folder / SUMMARY_JSON).read_text(encoding="utf-8"))
    made = {key: summary.get(key) for key in _made(run, folds, rank_by, filter_by, split)}
    if made != _made(run, folds, rank_by, filter_by, split) or ("dynamics_run" in summary) != dynamics:
        return None
    runs = [fold_config(run, folder, k) for k in range(1, folds + 1)]
    if dynamics:
        runs.append(dynamics_config(run, folder))
    content = data_of(run).fingerprint()  # None: the data set checks its own files
    for each in runs:
        held = RunDir(each.run_dir())
        if not held.is_finished() or held.config_differences(each):
            return None
        if content is not None and held.recorded_fingerprint() not in (None, content):
            return None
    return summary


def _settings(run: RunConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """What the comparison's files record of how its lists were made."""
    return {"data": run.data.name, "experiment": run.experiment, **choices}


def _write(comparison: LabelIssuesComparison) -> None:
    """The comparison's Markdown table and its JSON (the settings, each list's folder and every
    figure's values over seeds, mean, std and p) beside the lists."""
    write_text(comparison.markdown, comparison.table())
    record = {
        **comparison.settings,
        "judged": comparison.judged,
        "against": comparison.methods[0],
        "lists": [
            {
                "method": method,
                "seed": seed,
                "folder": str(folder),
                "read_back": (method, seed) in comparison.read_back,
            }
            for (method, seed), folder in comparison.folders.items()
        ],
        "rows": comparison.rows,
    }
    write_text(comparison.json_path, json.dumps(json_values(record), indent=1, allow_nan=False) + "\n")
