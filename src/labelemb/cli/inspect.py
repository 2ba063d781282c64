"""`labelemb analyze`, `similar`, `report` and `ranks`: what finished runs learned and how the
methods compare, as tables and pictures."""

from __future__ import annotations

import argparse
import os
import typing
from pathlib import Path

from .arguments import parse_names, positive_int


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..analysis.analyze import analyze  # lazy: loaded when this command runs

    output = args.output_dir
    if output is None:
        common = Path(os.path.commonpath([str(Path(d).resolve()) for d in args.run_dirs]))
        output = (common if len(args.run_dirs) > 1 else Path(args.run_dirs[0])) / "analysis"
    summary = analyze(
        args.run_dirs, output, classes=args.classes, top=args.top, fmt=args.format, data_dir=args.data_dir
    )
    for method, wn in summary["wordnet_by_method"].items():
        print(f"{method}: WordNet tau-b {wn['mean']:.3f} ± {wn['std']:.3f} over {wn['runs']} run(s)")
    print(f"wrote heatmaps, dendrograms, MDS maps, similar.md and analysis.json/.md in {output}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    # lazy: loaded when this command runs
    from ..analysis import label_similarity, most_similar, similar_table
    from ..analysis.representation import run_representation  # lazy: loaded when this command runs
    from ..analysis.similarity import label_indices, nearest_labels  # lazy: loaded when this command runs

    rep = run_representation(args.run_dir, data_dir=args.data_dir)
    if rep.source != "learned":
        print(f"{rep.method} learns no label representation: using the {rep.source} of its model\n")
    if args.labels is None:
        print(similar_table(most_similar(label_similarity(rep.matrix), rep.class_names, top=args.top)))
        return 0
    try:
        labels = label_indices(
            [name.strip() for name in args.labels.split(",") if name.strip()], rep.class_names
        )
    except ValueError as error:
        raise ValueError(f"--labels: {error}") from None
    print(similar_table(nearest_labels(args.run_dir, rep, labels, top=args.top)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..analysis.report import build_report  # lazy: loaded when this command runs

    path = build_report(
        args.dir, args.output, top=args.top, data_dir=args.data_dir, analyze_runs=not args.no_analysis
    )
    print(path)
    return 0


def cmd_ranks(args: argparse.Namespace) -> int:
    from ..analysis.ranks import experiments_rank_table, plot_ranks  # lazy: loaded when this command runs

    table = experiments_rank_table(args.dirs, args.methods)
    if len(table.methods) < 2:
        raise ValueError(f"{args.dirs[0]} holds runs of one method: ranks compare two or more")
    output = args.output or Path(args.dirs[0]) / "ranks.png"
    print(table.markdown())
    print(f"\nwrote {plot_ranks(table, output, title=args.title or Path(args.dirs[0]).name)}")
    return 0


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
    analyze.set_defaults(func=cmd_analyze)


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
    similar.set_defaults(func=cmd_similar)


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
        "--no-analysis", action="store_true", help="reuse DIR/analysis/ from an earlier report"
    )
    report.set_defaults(func=cmd_report)


def _add_ranks(commands: typing.Any) -> None:
    """labelemb ranks."""
    ranks = commands.add_parser(
        "ranks",
        help="one picture of a comparison: each method's rank under each criterion",
        description="Ranks the methods of a comparison folder under every criterion its runs have "
        "figures for (the test error, ECE raw and after temperature scaling, AURC, each OOD set's "
        "AUROC, the error under shift), and under the score of each further comparison folder (the "
        "same methods on noisy labels: the column says how many labels were wrong). Prints the table "
        "and writes the picture: a heatmap, 1 best, rows in order of mean rank.",
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
    ranks.set_defaults(func=cmd_ranks)
