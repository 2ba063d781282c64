"""`labelemb analyze`, `similar`, `report` and `ranks`: what finished runs learned and how the
methods compare, as tables and pictures (analyze, report and ranks: the arguments handed to
:func:`labelemb.analyze`, :func:`labelemb.report` and :func:`labelemb.ranks`, and what they return
said on the terminal)."""

from __future__ import annotations

import argparse

from ..analysis import label_similarity, most_similar, similar_table
from ..analysis.representation import run_representation
from ..analysis.similarity import label_indices, nearest_labels
from ..experiment import analyze, ranks, report


def cmd_analyze(args: argparse.Namespace) -> int:
    analysis = analyze(
        args.run_dirs,
        output_dir=args.output_dir,
        classes=args.classes,
        top=args.top,
        fmt=args.format,
        data_dir=args.data_dir,
    )
    for line in analysis.lines():
        print(line)
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
    print(
        report(args.dir, args.output, top=args.top, data_dir=args.data_dir, analyze_runs=not args.no_analysis)
    )
    return 0


def cmd_ranks(args: argparse.Namespace) -> int:
    ranked = ranks(args.dirs, methods=args.methods, output=args.output, title=args.title)
    print(ranked.to_markdown())
    print(f"\nwrote {ranked.picture}")
    return 0
