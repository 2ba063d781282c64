"""The files a comparison leaves in its experiment folder (its tables and its curves), and the
finished runs a command over an experiment folder reads."""

from __future__ import annotations

from pathlib import Path


def write_comparison(experiment_dir: Path, *, short: bool = False) -> str:
    """Write comparison.md, comparison.csv, the curves (against epochs: curves.png; training
    seconds: curves-seconds.png; counted FLOPs, when the runs have them: curves-flops.png; for runs
    trained on noisy labels, memorisation.png) and, for two methods or more, the ranks picture
    (ranks.png: :mod:`~labelemb.analysis.ranks`) for the runs in ``experiment_dir``.

    Returns comparison.md's text; with ``short``, what a terminal shows instead: the few columns
    of :func:`~labelemb.analysis.comparison_table.format_short` and a line saying where the rest is.
    """
    # lazy: loaded when this command runs
    from ..analysis import comparison_rows, format_csv, format_markdown, load_runs, plot_error_curves
    from ..analysis import ranks as rank_picture  # lazy: loaded when this command runs
    from ..analysis.compare import comparison_metric  # lazy: loaded when this command runs
    from ..analysis.comparison_table import format_short  # lazy: loaded when this command runs
    from ..analysis.curves import has_memorisation, plot_memorisation  # lazy: loaded when this command runs
    from ..rundir import write_text  # lazy: loaded when this command runs

    runs = load_runs(experiment_dir)
    rows = comparison_rows(runs)
    scoring = comparison_metric(runs)
    table = format_markdown(rows, scoring=scoring)
    write_text(experiment_dir / "comparison.md", table + "\n")
    write_text(experiment_dir / "comparison.csv", format_csv(rows))
    plot_error_curves(runs, experiment_dir / "curves.png", title=experiment_dir.name)
    plot_error_curves(
        runs, experiment_dir / "curves-seconds.png", title=experiment_dir.name, axis="train_seconds"
    )
    if all("train_flops" in rec for method_runs in runs.values() for r in method_runs for rec in r.records):
        plot_error_curves(
            runs, experiment_dir / "curves-flops.png", title=experiment_dir.name, axis="train_flops"
        )
    if has_memorisation(runs):
        plot_memorisation(runs, experiment_dir / "memorisation.png", title=experiment_dir.name)
    if len(rows) > 1:
        criteria = rank_picture.comparison_criteria(rows)
        ranks = rank_picture.rank_table([(criterion, rows) for criterion in criteria])
        rank_picture.plot_ranks(ranks, experiment_dir / "ranks.png", title=experiment_dir.name)
    if not short:
        return table
    pictures = "curves.png, ranks.png" if len(rows) > 1 else "curves.png"
    return (
        f"{format_short(rows, scoring=scoring)}\n\nfull tables: "
        f"{experiment_dir / 'comparison.md'} (and comparison.csv, {pictures}); "
        f"one page: labelemb report {experiment_dir}"
    )


def finished_folders(path: Path) -> list[Path]:
    """The run folder ``path``, or the finished runs of the experiment folder ``path``; a
    FileNotFoundError naming what it should hold where it holds none."""
    from ..rundir import CONFIG_FILE, run_dirs  # lazy: loaded when this command runs

    if (path / CONFIG_FILE).is_file():
        return [path]
    folders = [folder.path for folder in run_dirs(path)]
    if not folders:
        raise FileNotFoundError(f"{path} holds no finished run (a run folder, or <method>/seed<N>/ under it)")
    return folders
