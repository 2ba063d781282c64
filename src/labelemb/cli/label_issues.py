"""``labelemb label-issues``: which training rows of a data set are likely wrong
(:func:`labelemb.find_label_issues`). Its parser is light (the detectors' and filters' names come
from the index); the work is imported when it runs."""

from __future__ import annotations

import argparse
import typing

from ..arguments import parse_names, parse_seeds, positive_int
from .index import read_index


def add_label_issues(commands: typing.Any, overrides_help: str, config_help: str) -> None:
    """The ``label-issues`` command's parser."""
    index = read_index()
    issues = commands.add_parser(
        "label-issues",
        help="rank the training rows whose label is likely wrong (K-fold cross-fitting, cleanlab)",
        description="Trains the config's run K times, each fold of the training rows held out once, "
        "scores every row by the model that did not train on it, and ranks the rows by cleanlab's "
        "label quality; writes label_issues.csv, .jsonl and .json (the estimated number of wrong rows, "
        "the noise matrix) to OUTPUT_DIR/EXPERIMENT/label-issues/METHOD-kK-seedSEED/. With --dynamics, "
        "one more run trains on every row and its training dynamics (aum, final_margin, final_loss, "
        'first_learned) are detectors too. Needs cleanlab: pip install "labelemb[label-issues]".',
    )
    issues.add_argument("--config", help=f"YAML config {config_help}")
    issues.add_argument("--method", help="the method the fold models train with (default: the config's)")
    issues.add_argument(
        "--methods",
        type=parse_names,
        help="compare these methods' fold models as finders of wrong labels (one list each and seed; "
        "p against the first): onehot,label_smoothing,label_embedding,elr",
    )
    issues.add_argument("--folds", type=positive_int, default=5, help="K, the folds (default 5)")
    issues.add_argument("--seed", type=int, help="the folds' and the runs' seed (default: the config's)")
    issues.add_argument(
        "--seeds",
        type=parse_seeds,
        help="one list per seed, compared over them (mean ± std, Welch's p): 0-2, 0,2,5",
    )
    issues.add_argument(
        "--rank-by",
        choices=index["label_issue_detectors"],
        default=index["label_issue_detectors"][0],
        help="the detector the list is ranked by (default %(default)s; aum, final_margin, final_loss and "
        "first_learned need --dynamics)",
    )
    issues.add_argument(
        "--dynamics",
        action="store_true",
        help="also train one run on every training row and score each row by its training dynamics "
        "(in sample: AUM, the final margin and loss, the epoch it was first learned); costs one more run",
    )
    issues.add_argument(
        "--filter",
        choices=index["label_issue_filters"],
        default=index["label_issue_filters"][0],
        help="cleanlab's filter that flags rows (find_label_issues' filter_by; default %(default)s)",
    )
    issues.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="the split whose rows are ranked (default %(default)s; test: the folds train on the test "
        "split's other folds alone, the rows numbered as the test file numbers them)",
    )
    issues.add_argument(
        "--top", type=positive_int, default=10, metavar="N", help="rows shown on the terminal (default 10)"
    )
    issues.add_argument("--data-dir", help="folder searched first for the dataset files")
    issues.add_argument("--output-dir", help="root of the run folders (default runs/)")
    issues.add_argument("--device", help="auto (the default), cpu, cuda or cuda:N, mps")
    issues.add_argument("--no-progress", action="store_true", help="no progress bars")
    issues.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    issues.set_defaults(func="label_issues:cmd_label_issues")


def cmd_label_issues(args: argparse.Namespace) -> int:
    """Find the likely wrong labels and show the most suspected rows; with --methods or --seeds,
    compare the lists of each method and seed."""
    from ..label_issues import find_label_issues  # lazy: loaded when this command runs

    overrides = _overrides(args)
    if args.methods is not None or args.seeds is not None:
        return _compare(args, overrides)
    issues = find_label_issues(
        args.config,
        folds=args.folds,
        method=args.method,
        seed=args.seed,
        rank_by=args.rank_by,
        filter_by=args.filter,
        dynamics=args.dynamics,
        split=args.split,
        overrides=overrides,
        progress=not args.no_progress,
    )
    for line in issues.lines(args.top):
        print(line)
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    """The command line's ``key=value`` overrides with what its shared options set."""
    overrides = list(args.overrides)
    for key, value in (
        ("data.dir", args.data_dir),
        ("output_dir", args.output_dir),
        ("train.device", args.device),
    ):
        if value:
            overrides.append(f"{key}={value}")
    return overrides


def _compare(args: argparse.Namespace, overrides: list[str]) -> int:
    """``--methods`` / ``--seeds``: one list per method and seed, compared (a finished list is read
    back); the table and where it is written."""
    from ..label_issues import compare_label_issues  # lazy: loaded when this command runs

    if args.methods is not None and args.method is not None:
        raise ValueError("--method and --methods both name the fold models' method: give one of them")
    if args.seeds is not None and args.seed is not None:
        raise ValueError("--seed and --seeds both name the seed: give --seeds 0-2 (or one --seed)")
    methods = args.methods if args.methods is not None else ([args.method] if args.method else None)
    comparison = compare_label_issues(
        args.config,
        methods=methods,
        seeds=args.seeds if args.seeds is not None else args.seed,
        folds=args.folds,
        rank_by=args.rank_by,
        filter_by=args.filter,
        dynamics=args.dynamics,
        split=args.split,
        overrides=overrides,
        progress=not args.no_progress,
    )
    for line in comparison.lines():
        print(line)
    return 0
