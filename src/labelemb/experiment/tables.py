"""The files a comparison leaves in its experiment folder (its tables and its curves), what a
notebook holds of them (:class:`Comparison`), and the finished runs a command over an experiment
folder reads."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis import comparison_rows, format_csv, format_markdown, load_runs, plot_error_curves
from ..analysis import ranks as rank_picture
from ..analysis.compare import comparison_metric
from ..analysis.comparison_table import format_short
from ..analysis.curves import has_memorisation, plot_memorisation
from ..analysis.provenance import code_note, uncommitted_runs, uncommitted_warning
from ..analysis.reference_table import read_reference, reference_csv, with_reference
from ..analysis.tables import noisy_labels_note
from ..evaluation.linear_reference import comparison_reference
from ..metrics.figures import figure_of
from ..rundir import CONFIG_FILE, run_dirs, write_text
from .columns import SCORE, column_of

#: The pictures a comparison may leave, in the order :func:`write_comparison` draws them.
PICTURES = ("curves.png", "curves-seconds.png", "curves-flops.png", "memorisation.png", "ranks.png")


@dataclass(frozen=True)
class Statistic:
    """One method's statistic of a comparison's rows over its seeds (:meth:`Comparison.figure`):
    its ``mean`` and ``std`` (None where a run lacks the figure), Welch's ``p_value`` against the
    baseline where the table gives one, the ``seeds`` it is over, and its ``unit`` (``percent``:
    0-100) as the API reference's table of the rows' columns gives it."""

    column: str
    method: str
    mean: float | None
    std: float | None
    p_value: float | None
    seeds: tuple[int, ...]
    unit: str = ""


@dataclass(repr=False)
class Comparison:
    """A comparison's tables, as ``labelemb compare`` writes them in its experiment folder.

    ``rows`` holds one record per method, the columns of comparison.csv: means, spreads and
    Welch p-values against the baseline, each column described in the API reference's table of
    the rows' columns (``selected_mean``: the mean test error at the selected check, in %).
    :meth:`figure` reads one method's statistic of one figure; :meth:`to_dataframe` gives the
    rows as a pandas DataFrame. ``runs`` holds the run folders by method; ``lacking``, (run
    folder, command) for each run that trained but could not be judged; ``failed``, the runs that
    failed (:class:`~labelemb.sweep.failures.FailedRun`: label, folder, reason) of the
    ``planned`` ones. ``figures`` are the pictures' files. ``reference``: a text comparison's
    linear reference (:class:`~labelemb.analysis.reference_table.Reference`), shown as rows of its
    tables, or None. A notebook shows it as its Markdown table; a shell, as one line.
    """

    experiment_dir: Path
    rows: list[dict[str, Any]]
    markdown: str
    csv: str
    short: str
    runs: dict[str, list[Path]]
    lacking: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[Any] = field(default_factory=list)
    planned: int = 0
    reference: Any = None

    def to_markdown(self) -> str:
        """comparison.md's text."""
        return self.markdown

    def to_csv(self) -> str:
        """comparison.csv's text."""
        return self.csv

    @property
    def figures(self) -> dict[str, Path]:
        """The pictures written beside the tables, by file name: each a :class:`~pathlib.Path` to
        a PNG file (``IPython.display.Image(filename=path)`` shows it in a notebook)."""
        folder = self.experiment_dir
        return {name: folder / name for name in PICTURES if (folder / name).is_file()}

    @property
    def ok(self) -> bool:
        """Whether every run trained and was judged."""
        return not self.lacking and not self.failed

    @property
    def methods(self) -> list[str]:
        """The compared methods, in the rows' order (the baseline first)."""
        return [row["method"] for row in self.rows]

    @property
    def seeds(self) -> list[int]:
        """Every seed a compared run trained on, in order."""
        return sorted({seed for folders in self.runs.values() for seed in _seeds(folders)})

    def figure(self, name: str, method: str) -> Statistic:
        """``method``'s statistic of the column ``name`` over its seeds: ``figure("ece",
        "label_embedding").mean`` reads the row's ``ece_mean`` (its ``ece_std`` and
        ``ece_p_value`` beside it); ``"selected"``, the selected score with the row's
        ``p_value``; a column of one number (``seconds_per_epoch``) is its mean. A KeyError
        names the methods, or the columns most like ``name``."""
        row = self._row(method)
        if f"{name}_mean" in row:
            mean, std = row[f"{name}_mean"], row.get(f"{name}_std")
            p_value = row.get("p_value" if name == "selected" else f"{name}_p_value")
        elif isinstance(row.get(name), (int, float)) and name != "seeds":  # a count, not a figure
            mean, std, p_value = row[name], None, None
        else:
            stems = sorted({key.removesuffix("_mean") for key in row if key.endswith("_mean")})
            near = difflib.get_close_matches(name, stems, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(near)}?" if near else f"the columns: {', '.join(stems[:8])}, ..."
            raise KeyError(f"the comparison's rows have no figure {name!r}: {hint}")
        described = column_of(f"{name}_mean") or column_of(name)
        unit = described.unit if described else ""
        if unit == SCORE:  # the task's score: its declaration's unit (a classifier's error: percent)
            scored = figure_of(str(row.get("metric", "")))
            unit = scored.unit if scored else ""
        return Statistic(name, method, mean, std, p_value, tuple(_seeds(self.runs.get(method, []))), unit)

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame, a row per method indexed by its name, the columns of
        comparison.csv; an ImportError saying how to get pandas where it is not installed."""
        try:
            import pandas  # lazy: an optional package, for this view only
        except ImportError:
            raise ImportError(
                "Comparison.to_dataframe needs pandas: pip install pandas (result.rows holds the same "
                "figures as a list of dicts)"
            ) from None
        return pandas.DataFrame(self.rows).set_index("method")

    def _row(self, method: str) -> dict[str, Any]:
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(f"no method {method!r} in this comparison (its methods: {', '.join(self.methods)})")

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        # Short: a shell shows this, and the dataclass's own repr printed every row (36,000 characters).
        columns = len(self.rows[0]) if self.rows else 0
        failed = f", failed={len(self.failed)} of {self.planned}" if self.failed else ""
        lacking = f", lacking={len(self.lacking)}" if self.lacking else ""
        return (
            f"Comparison(methods={self.methods}, seeds={self.seeds}, "
            f"experiment_dir={str(self.experiment_dir)!r}, "
            f"rows='{len(self.rows)} methods x {columns} columns'{failed}{lacking})"
        )

    def __str__(self) -> str:
        return self.short


def _seeds(folders: list[Path]) -> list[int]:
    """The seeds of run folders named ``seed<N>``."""
    return [int(folder.name.removeprefix("seed")) for folder in folders if folder.name[4:].isdigit()]


def write_comparison(experiment_dir: Path, config: Any = None, *, reference: bool = True) -> Comparison:
    """Write comparison.md, comparison.csv, the curves (against epochs: curves.png; training
    seconds: curves-seconds.png; counted FLOPs, when the runs have them: curves-flops.png; for runs
    trained on noisy labels, memorisation.png) and, for two methods or more, the ranks picture
    (ranks.png: :mod:`~labelemb.analysis.ranks`) for the runs in ``experiment_dir``.

    comparison.md ends with the code that trained the runs (:mod:`~labelemb.analysis.provenance`).
    A comparison on texts or tag sets shows its linear reference as rows of its tables, fitted
    or read (:func:`~labelemb.evaluation.linear_reference.comparison_reference`; ``config``: the
    runs', None: read from them); ``reference`` False leaves it out. Returns the comparison; its
    ``short`` text is what a terminal shows: the few columns of
    :func:`~labelemb.analysis.comparison_table.format_short` (the reference's rows among them, or
    the line saying why there is none), a line saying where the rest is, and the warning where
    uncommitted code trained any run.
    """
    experiment_dir = Path(experiment_dir)
    runs = load_runs(experiment_dir)
    rows = comparison_rows(runs)
    scoring = comparison_metric(runs)
    unfitted = comparison_reference(experiment_dir, config, enabled=reference)
    kept = read_reference(experiment_dir)
    methods_table = with_reference(format_markdown(rows, scoring=scoring), kept, scoring)
    table = "\n\n".join(filter(None, [methods_table, code_note(runs)]))
    csv = format_csv(rows) + reference_csv(rows, kept)
    write_text(experiment_dir / "comparison.md", table + "\n")
    write_text(experiment_dir / "comparison.csv", csv)
    _draw_curves(runs, experiment_dir)
    if len(rows) > 1:
        criteria = rank_picture.comparison_criteria(rows)
        ranks = rank_picture.rank_table([(criterion, rows) for criterion in criteria])
        rank_picture.plot_ranks(ranks, experiment_dir / "ranks.png", title=experiment_dir.name)
    pictures = "curves.png, ranks.png" if len(rows) > 1 else "curves.png"
    # Under the table, where the runs trained on noisy labels: what its ECE after scaling was fit on.
    summaries = [run.summary for method_runs in runs.values() for run in method_runs]
    short_rows = with_reference(format_short(rows, scoring=scoring), kept, scoring)
    short_table = "\n".join(filter(None, [short_rows, noisy_labels_note(summaries), unfitted]))
    short = (
        f"{short_table}\n\nfull tables: "
        f"{experiment_dir / 'comparison.md'} (and comparison.csv, {pictures}); "
        f"one page: labelemb report {experiment_dir}"
    )
    uncommitted = uncommitted_runs(runs)
    if uncommitted:  # said where it is seen, not only at the end of comparison.md
        short += "\n" + uncommitted_warning(uncommitted)
    folders = {
        method: [experiment_dir / method / f"seed{run.seed}" for run in method_runs]
        for method, method_runs in runs.items()
    }
    return Comparison(experiment_dir, rows, table, csv, short, folders, reference=kept)


def summarize(experiment_dir: str | Path, *, reference: bool = True) -> Comparison:
    """The comparison of the finished runs in ``experiment_dir``, its files written anew, without
    training (``labelemb compare --summarize``); ``reference``: as :func:`write_comparison`'s."""
    return write_comparison(Path(experiment_dir), reference=reference)


def _draw_curves(runs: dict[str, list[Any]], experiment_dir: Path) -> None:
    """The error curves against epochs, training seconds and (where every run counts them) FLOPs,
    and the memorisation curves of runs trained on noisy labels."""
    title = experiment_dir.name
    plot_error_curves(runs, experiment_dir / "curves.png", title=title)
    plot_error_curves(runs, experiment_dir / "curves-seconds.png", title=title, axis="train_seconds")
    if all("train_flops" in rec for method_runs in runs.values() for r in method_runs for rec in r.records):
        plot_error_curves(runs, experiment_dir / "curves-flops.png", title=title, axis="train_flops")
    if has_memorisation(runs):
        plot_memorisation(runs, experiment_dir / "memorisation.png", title=title)


def finished_folders(path: Path) -> list[Path]:
    """The run folder ``path``, or the finished runs of the experiment folder ``path``; a
    FileNotFoundError naming what it should hold where it holds none."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return [path]
    folders = [folder.path for folder in run_dirs(path)]
    if not folders:
        raise FileNotFoundError(f"{path} holds no finished run (a run folder, or <method>/seed<N>/ under it)")
    return folders
