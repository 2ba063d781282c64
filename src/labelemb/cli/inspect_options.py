"""The parsers of ``labelemb analyze``, ``similar``, ``report`` and ``ranks`` (their work is in
:mod:`.inspect`, imported when one runs), and ``predict``'s options of conformal prediction sets."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from ..arguments import parse_names, positive_int
from .index import read_index


def add_inspect_commands(commands: typing.Any) -> None:
    """The parsers of ``analyze``, ``similar``, ``report`` and ``ranks``."""
    _add_analyze(commands)
    _add_similar(commands)
    _add_report(commands)
    _add_ranks(commands)


def _add_analyze(commands: typing.Any) -> None:
    """labelemb analyze."""
    analyze = commands.add_parser(
        "analyze",
        help="heatmaps, nearest labels, dendrograms, MDS maps and WordNet correlation of runs",
        description="Reads each finished run's label representation (learned, or the mean softmax of a "
        "method that learns none) and writes its heatmap, nearest labels, dendrogram and MDS map, its "
        "WordNet correlation where the classes have synsets, and for runs on noisy labels its "
        "similarity beside the noise's transition matrix; analysis.md and analysis.json sum them up.",
    )
    analyze.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="finished runs: <output_dir>/<exp>/<method>/seed<N>",
    )
    analyze.add_argument("--classes", type=parse_names, help="a subset: cat,dog")
    analyze.add_argument("--top", type=positive_int, default=5, help="nearest labels per class (default 5)")
    analyze.add_argument(
        "--format", choices=["png", "svg"], default="png", help="figure format (default png)"
    )
    analyze.add_argument(
        "--output-dir", type=Path, help="default: RUN_DIR/analysis (or the runs' common folder)"
    )
    analyze.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    analyze.set_defaults(func="inspect:cmd_analyze")


def _add_similar(commands: typing.Any) -> None:
    """labelemb similar."""
    similar = commands.add_parser(
        "similar",
        help="each class's most similar classes in a run's learned embedding",
        description="Prints, for each label of a finished run (or the labels named), the labels its "
        "representation puts nearest, with their similarity.",
    )
    similar.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    similar.add_argument(
        "--top", type=positive_int, default=5, help="most similar labels shown per label (default 5)"
    )
    similar.add_argument(
        "--labels",
        metavar="A,B,...",
        help="only these labels (comma-separated names); with a compressed embedding only their rows "
        "of softmax(e) are formed, so a 50,000-word vocabulary needs no 50,000 x 50,000 matrix",
    )
    similar.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    similar.set_defaults(func="inspect:cmd_similar")


def _add_report(commands: typing.Any) -> None:
    """labelemb report."""
    report = commands.add_parser(
        "report",
        help="one self-contained HTML page for a comparison (table, curves; heatmaps and WordNet for "
        "images, nearest words for text)",
        description="Writes DIR/report.html (images embedded, opens offline) from the runs of a "
        "comparison directory; the analysis of each method's lowest seed goes to DIR/analysis/.",
    )
    report.add_argument("dir", type=Path, metavar="DIR", help="a comparison folder: <method>/seed<N>/ runs")
    report.add_argument("--output", type=Path, help="the HTML file (default DIR/report.html)")
    report.add_argument("--top", type=positive_int, default=5, help="nearest labels per class (default 5)")
    report.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    report.add_argument(
        "--no-analysis",
        action="store_true",
        help="reuse DIR/analysis/ from an earlier report (refused where its runs have changed since)",
    )
    report.set_defaults(func="inspect:cmd_report")


def _add_ranks(commands: typing.Any) -> None:
    """labelemb ranks."""
    ranks = commands.add_parser(
        "ranks",
        help="one picture of a comparison: each method's rank under each criterion",
        description="Ranks the methods of a comparison folder under every criterion its runs have "
        "figures for (the test error, ECE raw and after temperature scaling, AURC, each OOD set's "
        "AUROC, the error under shift), and under the score of each further comparison folder (the "
        "same methods on noisy labels: the column says how many labels were wrong). Prints the table "
        "and writes the picture: a heatmap, 1 best; each method's mean rank is over the criteria it "
        "has, and the rows go by how many those are (shown beside it), then by mean rank.",
    )
    ranks.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="comparison folders (<method>/seed<N>/ runs); the first gives every criterion, each further "
        "one its score",
    )
    ranks.add_argument(
        "--methods", type=parse_names, help="only these methods, ranked among themselves: onehot,lwr"
    )
    ranks.add_argument("--output", type=Path, help="the picture, .png or .svg (default: FIRST_DIR/ranks.png)")
    ranks.add_argument("--title", help="said under the picture (default: the first folder's name)")
    ranks.set_defaults(func="inspect:cmd_ranks")


def add_set_options(predict: argparse.ArgumentParser) -> None:
    """``labelemb predict``'s options of conformal prediction sets."""
    predict.add_argument(
        "--sets",
        type=float,
        metavar="LEVEL",
        help="also each input's conformal prediction set at this target coverage, such as 0.9, "
        "calibrated on the run's dev split (columns set and set_size)",
    )
    predict.add_argument(
        "--set-method",
        choices=read_index()["set_methods"],
        help=f"with --sets: the conformal score, {read_index()['set_method']} (default; the smallest "
        "sets), aps or raps (never randomised)",
    )
