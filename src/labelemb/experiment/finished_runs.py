"""``labelemb.report``, ``labelemb.ranks`` and ``labelemb.analyze``: what finished runs learned and
how their methods compare, as a page, a picture of ranks and pictures of the label representations,
one call each (the commands ``report``, ``ranks`` and ``analyze`` parse their arguments and call
them, then print what they return)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from ..analysis.analyze import analyze as analyze_runs
from ..analysis.analyze import percent
from ..analysis.ranks import RankTable, experiments_rank_table, plot_ranks
from ..analysis.reference_table import read_reference, with_reference
from ..analysis.report import build_report
from ..arguments import parse_names

#: A folder as the calls take it: its path as text or as a path.
Folder = str | os.PathLike[str]


def name_list(names: str | Sequence[str] | None) -> list[str] | None:
    """Names as a list, or one text as the command line takes them (``"onehot, lwr"``)."""
    if names is None:
        return None
    return parse_names(names) if isinstance(names, str) else list(names)


def folder_list(folders: Folder | Sequence[Folder], what: str) -> list[Path]:
    """One folder or several, as paths; a ValueError where there is none."""
    listed = [folders] if isinstance(folders, (str, PurePath)) else list(folders)
    if not listed:
        raise ValueError(f"{what}: give at least one folder")
    return [Path(folder) for folder in listed]


def report(
    folder: Folder,
    output: Folder | None = None,
    *,
    top: int = 5,
    data_dir: str | None = None,
    analyze_runs: bool = True,
) -> Path:
    """Write one self-contained HTML page about the comparison in ``folder`` (its table, curves,
    calibration, each method's label representation) and return its path, as ``labelemb report``
    does: ``output`` (default ``folder/report.html``), the analysis files in ``folder/analysis/``,
    ``top`` nearest labels per class. ``analyze_runs=False`` reuses the analysis an earlier report
    left there (``--no-analysis``), refused where a run has changed since."""
    return build_report(folder, output, top=top, data_dir=data_dir, analyze_runs=analyze_runs)


@dataclass(repr=False)
class Ranks:
    """What :func:`ranks` drew: ``table``, each method's value and rank (1: best) under each
    criterion (:class:`~labelemb.analysis.ranks.RankTable`: ``methods``, ``heads``, ``values``,
    ``ranks``, ``mean_rank(method)``); its Markdown as the command prints it (``to_markdown()``,
    the first folder's linear reference under it where it has one); ``picture``, the file written.
    A notebook shows it as its table; a shell, as one line."""

    table: RankTable
    markdown: str
    picture: Path

    def to_markdown(self) -> str:
        """The table of ranks, as ``labelemb ranks`` prints it."""
        return self.markdown

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __repr__(self) -> str:
        return (
            f"Ranks(methods={self.table.methods}, criteria={len(self.table.heads)}, "
            f"picture={str(self.picture)!r})"
        )


def ranks(
    folders: Folder | Sequence[Folder],
    *,
    methods: str | Sequence[str] | None = None,
    output: Folder | None = None,
    title: str | None = None,
) -> Ranks:
    """Rank the methods of a comparison folder under every criterion its runs have figures for,
    and under the score of each further folder, as ``labelemb ranks`` does; draw the picture
    (``output``, default ``ranks.png`` in the first folder; ``.svg`` too) with ``title`` under it
    (default: the first folder's name). ``methods`` (a list or ``"onehot,lwr"``): only these,
    ranked among themselves."""
    folders = folder_list(folders, "ranks")
    table = experiments_rank_table(list(folders), name_list(methods))
    if len(table.methods) < 2:
        raise ValueError(f"{folders[0]} holds runs of one method: ranks compare two or more")
    # The first folder's linear reference (a text comparison's), as rows under the ranked methods.
    markdown = with_reference(table.markdown(), read_reference(folders[0]))
    output = Path(output) if output is not None else folders[0] / "ranks.png"
    return Ranks(table, markdown, plot_ranks(table, output, title=title or folders[0].name))


@dataclass(repr=False)
class Analysis:
    """What :func:`analyze` wrote in ``output_dir`` (each run's heatmap, nearest labels,
    dendrogram and MDS map in ``<method>-seed<N>/``, then analysis.md and analysis.json), and
    ``summary``, analysis.json's record: each run's figures (``runs``), each method's WordNet
    correlation (``wordnet_by_method``) and, where the runs have them, the noise's and the facets'
    (``noise_by_method``, ``facets_by_method``)."""

    output_dir: Path
    summary: dict[str, Any]

    def lines(self) -> list[str]:
        """What ``labelemb analyze`` prints: each method's WordNet correlation and facet figures,
        and where the files are."""
        lines = [
            f"{method}: WordNet tau-b {wn['mean']:.3f} ± {wn['std']:.3f} over {wn['runs']} run(s)"
            for method, wn in self.summary["wordnet_by_method"].items()
        ]
        for method, found in self.summary.get("facets_by_method", {}).items():
            near, chance, auroc = (
                found[key] for key in ("facet_nearest", "facet_nearest_chance", "facet_pair_auroc")
            )
            lines.append(
                f"{method}: nearest tag in its facet {percent(near)} (by chance "
                f"{100 * chance['mean']:.1f} %), same-facet pair AUROC {percent(auroc)} over "
                f"{near['runs']} run(s)"
            )
        lines.append(f"wrote the pictures, similar.md and analysis.json/.md in {self.output_dir}")
        return lines

    def to_markdown(self) -> str:
        """analysis.md: the WordNet correlation per method, then each run's nearest labels."""
        return (self.output_dir / "analysis.md").read_text(encoding="utf-8")

    def __repr__(self) -> str:
        runs = self.summary["runs"]
        methods = list(dict.fromkeys(str(run["method"]) for run in runs))
        return f"Analysis(methods={methods}, runs={len(runs)}, output_dir={str(self.output_dir)!r})"


def analyze(
    run_dirs: Folder | Sequence[Folder],
    *,
    output_dir: Folder | None = None,
    classes: str | Sequence[str] | None = None,
    top: int = 5,
    fmt: str = "png",
    data_dir: str | None = None,
) -> Analysis:
    """Read each finished run's label representation (learned, or the mean softmax of a method that
    learns none) and draw it, as ``labelemb analyze`` does: its heatmap, ``top`` nearest labels,
    dendrogram and MDS map (``fmt``: png or svg), its WordNet correlation where the classes have
    synsets, its similarity beside the noise's transition matrix for runs on noisy labels.
    ``output_dir`` defaults to ``RUN_DIR/analysis`` (several runs: their common folder's);
    ``classes`` (a list or ``"cat,dog"``) draws a subset."""
    run_dirs = folder_list(run_dirs, "analyze")
    if output_dir is None:
        common = Path(os.path.commonpath([str(folder.resolve()) for folder in run_dirs]))
        output_dir = (common if len(run_dirs) > 1 else run_dirs[0]) / "analysis"
    summary = analyze_runs(
        list(run_dirs), output_dir, classes=name_list(classes), top=top, fmt=fmt, data_dir=data_dir
    )
    return Analysis(Path(output_dir), summary)
