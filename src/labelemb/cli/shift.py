"""``labelemb shift``: finished runs scored on corrupted copies of their test split, from their saved
weights (:mod:`labelemb.predict.shift`).

``train``, ``compare`` and ``tune`` do it once their classifiers finish when the config names
conditions under ``shift:`` (:func:`shift_trained`), so the command is for runs trained before, or
for other corruptions.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..progress import Steps, draws_bar
from .comparison import finished_folders, write_comparison
from .notes import one_line


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
    shift.set_defaults(func=cmd_shift)


def cmd_shift(args: argparse.Namespace) -> int:
    path: Path = args.path
    folders = finished_folders(path)
    corruptions = None if args.corruptions is None else [c for c in args.corruptions.split(",") if c.strip()]
    records = shift_finished(
        folders,
        corruptions,
        data_dir=args.data_dir,
        refresh=args.refresh,
        device=args.device or "cpu",
        progress=not args.no_progress,
    )
    for folder, record in zip(folders, records):
        print(f"{folder}: {shift_line(record)}")
    if len(folders) > 1 or folders[0] != path:
        print(write_comparison(path))
    return 0


def shift_finished(
    folders: Sequence[Path],
    corruptions: Sequence[str] | None = None,
    *,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Each finished run folder's shift record (:func:`labelemb.predict.shift.shift_run`), with a
    progress bar over the runs (and over one run's conditions, for a single run)."""
    from ..predict.shift import shift_run  # lazy: loaded when this command runs

    shown = draws_bar(progress)
    records = []
    for folder in tqdm(folders, desc="shift", unit="run", disable=not shown or len(folders) < 2, leave=False):
        records.append(
            shift_run(
                folder,
                corruptions=corruptions,
                data_dir=data_dir,
                refresh=refresh,
                device=device,
                progress=shown and len(folders) == 1,
            )
        )
    return records


def shift_line(record: dict[str, Any]) -> str:
    """One line of a run's shift record: clean error, mean error under shift and over how many."""
    held = record.get("conditions", {})
    clean = record.get("clean", {}).get("error")
    if not held or clean is None:
        return "no conditions"
    mean = sum(c["error"] for c in held.values()) / len(held)
    return f"error {clean:.2f} % clean, {mean:.2f} % on average under {len(held)} corruption conditions"


def shift_trained(configs: Sequence[Any], device: str, progress: bool) -> list[tuple[Path, str]]:
    """After ``train``, ``compare`` or ``tune``: the finished runs of ``configs`` whose config names
    ``shift:`` conditions, scored under them. What trained stands: a run that cannot be shifted is
    said and returned, (run folder, ``"shift"``), for the command to fail."""
    from ..data.corruptions.suites import conditions  # lazy: loaded when this command runs
    from ..data.registry import dataset_yields  # lazy: loaded when this command runs
    from ..predict.shift import shift_run  # lazy: loaded when this command runs
    from ..rundir import RunDir  # lazy: loaded when this command runs

    chosen = [c for c in configs if c.shift and RunDir(c.run_dir()).is_finished()]
    if not chosen:
        return []

    count = len(conditions(chosen[0].shift, dataset_yields(chosen[0].data.name, chosen[0].data_sections())))
    detail = (
        f" ({', '.join(chosen[0].shift)}) for {len(chosen)} run(s); a corrupted copy of the test split is "
        "built the first time it is needed and read from the cache after"
    )
    lacking = []
    with Steps("scoring under shift", count * len(chosen), "condition", bar=progress, detail=detail) as steps:
        for i, config in enumerate(chosen):
            try:
                shift_run(config.run_dir(), device=device, on_step=steps.step)
            except (ValueError, RuntimeError) as error:  # PredictError, DataError, RunDirError
                tqdm.write(f"{config.run_dir()}: not shifted: {one_line(error)}", file=sys.stderr)
                lacking.append((Path(config.run_dir()), "shift"))
            steps.advance(count * (i + 1))  # conditions read back are done at once
    return lacking
