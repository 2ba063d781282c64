"""The parsers of ``labelemb evaluate`` and ``labelemb shift``: finished runs judged again from
their saved weights, without training. Light: each command's work is imported when it runs."""

from __future__ import annotations

import typing
from pathlib import Path


def add_evaluate(commands: typing.Any) -> None:
    """The ``evaluate`` command's parser."""
    evaluate = commands.add_parser(
        "evaluate",
        help="judge finished classifiers beyond their error: selective classification, conformal "
        "sets, out-of-distribution detection (on the selected weights, no training)",
        description="Computes each finished run's evaluation.json (kept where it still fits its "
        "weights and code) and, for an experiment folder, writes its comparison tables again.",
    )
    evaluate.add_argument(
        "path", type=Path, metavar="RUN_OR_EXPERIMENT", help="a run folder, or an experiment folder of runs"
    )
    evaluate.add_argument(
        "--ood",
        action="append",
        metavar="DATA_OR_FILE",
        help="an out-of-distribution set: a data set's name (mnist) or a file or folder of inputs; "
        "repeat for more (default: the sets each run's config names under ood:)",
    )
    evaluate.add_argument("--data-dir", help="the folder of the runs' data files, if they moved")
    evaluate.add_argument("--refresh", action="store_true", help="compute anew even what still fits")
    evaluate.add_argument("--device", help="cpu (default), cuda, cuda:N or mps")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(func="evaluate:cmd_evaluate")


def add_shift(commands: typing.Any) -> None:
    """The ``shift`` command's parser."""
    shift = commands.add_parser(
        "shift",
        help="score finished classifiers on corrupted test inputs (MNIST-C corruptions, severities, "
        "text perturbations), from their selected weights, without training",
        description="Computes each finished run's shift.json (keeping the conditions that still fit) "
        "and, for an experiment folder, writes its comparison tables again.",
    )
    shift.add_argument(
        "path", type=Path, metavar="RUN_OR_EXPERIMENT", help="a run folder, or an experiment folder of runs"
    )
    shift.add_argument(
        "--corruptions",
        metavar="LIST",
        help="comma-separated suites (mnist-c, severities, text), corruption names, name@3 or "
        "name@all (default: the shift: entries of each run's config, else mnist-c,severities for "
        "images and text for texts)",
    )
    shift.add_argument("--data-dir", help="the folder of the runs' data files, if they moved")
    shift.add_argument("--refresh", action="store_true", help="compute anew even what still fits")
    shift.add_argument("--device", help="cpu (default), cuda, cuda:N or mps")
    shift.add_argument("--no-progress", action="store_true", help="no progress bar")
    shift.set_defaults(func="evaluate:cmd_shift")
