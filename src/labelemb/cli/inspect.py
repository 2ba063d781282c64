"""`labelemb analyze`, `similar`, `report` and `ranks`: what finished runs learned and how the
methods compare, as tables and pictures."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..analysis import label_similarity, most_similar, similar_table
from ..analysis.analyze import analyze, percent
from ..analysis.ranks import experiments_rank_table, plot_ranks
from ..analysis.reference_table import read_reference, with_reference
from ..analysis.report import build_report
from ..analysis.representation import run_representation
from ..analysis.similarity import label_indices, nearest_labels


def cmd_analyze(args: argparse.Namespace) -> int:

    output = args.output_dir
    if output is None:
        common = Path(os.path.commonpath([str(Path(d).resolve()) for d in args.run_dirs]))
        output = (common if len(args.run_dirs) > 1 else Path(args.run_dirs[0])) / "analysis"
    summary = analyze(
        args.run_dirs, output, classes=args.classes, top=args.top, fmt=args.format, data_dir=args.data_dir
    )
    for method, wn in summary["wordnet_by_method"].items():
        print(f"{method}: WordNet tau-b {wn['mean']:.3f} ± {wn['std']:.3f} over {wn['runs']} run(s)")
    for method, found in summary.get("facets_by_method", {}).items():
        near, chance, auroc = (
            found[key] for key in ("facet_nearest", "facet_nearest_chance", "facet_pair_auroc")
        )
        print(
            f"{method}: nearest tag in its facet {percent(near)} (by chance {100 * chance['mean']:.1f} %), "
            f"same-facet pair AUROC {percent(auroc)} over {near['runs']} run(s)"
        )
    print(f"wrote the pictures, similar.md and analysis.json/.md in {output}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:

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

    path = build_report(
        args.dir, args.output, top=args.top, data_dir=args.data_dir, analyze_runs=not args.no_analysis
    )
    print(path)
    return 0


def cmd_ranks(args: argparse.Namespace) -> int:

    table = experiments_rank_table(args.dirs, args.methods)
    if len(table.methods) < 2:
        raise ValueError(f"{args.dirs[0]} holds runs of one method: ranks compare two or more")
    output = args.output or Path(args.dirs[0]) / "ranks.png"
    # The first folder's linear reference (a text comparison's), as rows under the ranked methods.
    print(with_reference(table.markdown(), read_reference(args.dirs[0])))
    print(f"\nwrote {plot_ranks(table, output, title=args.title or Path(args.dirs[0]).name)}")
    return 0
