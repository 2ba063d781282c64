"""``labelemb evaluate``: finished runs judged beyond their error, from their saved weights.

``train`` and ``compare`` evaluate the classifiers they train the same way once they finish
(:func:`evaluate_finished`), so the command is for runs trained before, or for other OOD sets.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..progress import Steps, draws_bar
from .comparison import finished_folders, write_comparison
from .notes import one_line
from .shift import shift_trained


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
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    path: Path = args.path
    folders = finished_folders(path)
    sets = None if args.ood is None else [ood_set(text) for text in args.ood]
    records = evaluate_finished(
        folders,
        sets,
        data_dir=args.data_dir,
        refresh=args.refresh,
        device=args.device or "cpu",
        progress=not args.no_progress,
    )
    for folder, record in zip(folders, records):
        print(f"{folder}: {evaluation_line(record)}")
    if len(folders) > 1 or folders[0] != path:
        print(write_comparison(path))
        log_comparison(path, folders[0])
    return 0


def log_comparison(experiment_dir: Path, folder: Path) -> None:
    """The comparison table written anew (with its tables of the evaluations) to the trackers the
    runs' config names (``folder``'s, one of them), beside the one ``compare`` logged."""
    config = saved_config(folder)
    if config.train.log_to:
        from ..tracking import log_table  # lazy: loaded when this command runs

        log_table(config, experiment_dir, "comparison")


def ood_set(text: str) -> Any:
    """``--ood``'s value as an ood set: an existing file or folder, a data set's name, or what looks
    like a file (a suffix, a folder in it: looked for as data files are, and named if not found)."""
    from ..config import OodSetConfig  # lazy: loaded when this command runs
    from ..data import DATASETS, dataset_key  # lazy: loaded when this command runs

    path = Path(text).expanduser()
    if path.exists() or (dataset_key(text) not in DATASETS and (path.suffix or len(path.parts) > 1)):
        return OodSetConfig(path=text)
    return OodSetConfig(data=text)


def evaluate_finished(
    folders: Sequence[Path],
    sets: Sequence[Any] | None = None,
    *,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str = "cpu",
    progress: bool = True,
    configs: Sequence[Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each finished run folder's evaluation (:func:`labelemb.predict.evaluation.evaluate_run`),
    with a progress bar over the runs. A record computed here (not one read back as it was) goes to
    the trackers its run's config names (:func:`labelemb.tracking.log_evaluation`): ``configs``,
    one per folder, or each run's saved config; ``on_step``: handed to each evaluation (its parts,
    for a display of the caller's)."""
    from ..predict.evaluation import evaluate_run  # lazy: loaded when this command runs
    from ..rundir import RunDir  # lazy: loaded when this command runs

    shown = draws_bar(progress) and len(folders) > 1
    records = []
    for i, folder in enumerate(tqdm(folders, desc="evaluating", unit="run", disable=not shown, leave=False)):
        before = RunDir(folder).read_evaluation()
        records.append(
            evaluate_run(folder, ood=sets, data_dir=data_dir, refresh=refresh, device=device, on_step=on_step)
        )
        if records[-1] != before:
            log_evaluation(configs[i] if configs is not None else saved_config(folder), folder, records[-1])
    return records


def saved_config(folder: Path) -> Any:
    """The config a run folder saved (``config.yaml``), as a run config."""
    from ..predict.source import run_config  # lazy: loaded when this command runs
    from ..rundir import RunDir  # lazy: loaded when this command runs

    return run_config(RunDir(folder))


def log_evaluation(config: Any, folder: Path, record: dict[str, Any]) -> None:
    """``record`` to the trackers ``config`` names; no tracker package is imported without one."""
    if config.train.log_to:
        from ..tracking import log_evaluation as to_trackers  # lazy: loaded when this command runs

        to_trackers(config, folder, record)


def evaluation_line(record: dict[str, Any]) -> str:
    """One line of a run's evaluation, each figure named with the score it is of (the demo's
    table's MSP AUROC among them): AURC of the max-softmax confidence, the APS set size, and each
    OOD set's AUROC of the max-softmax and of the energy score."""
    # Each share in percent, in the record as on this line (labelemb.metrics.figures).
    test = record.get("test", {})
    parts = []
    if "selective_msp_aurc" in test:
        parts.append(f"AURC (MSP) {test['selective_msp_aurc']:.2f} %")
    if "conformal_aps_set_size" in test:
        parts.append(f"APS sets of {test['conformal_aps_set_size']:.2f} classes at 90 %")
    for name, held in record.get("ood", {}).items():
        figures = held.get("figures", {})
        aurocs = [
            f"{figures[key]:.2f} % ({score})"
            for key, score in (("ood_msp_auroc", "MSP"), ("ood_energy_auroc", "energy"))
            if figures.get(key) is not None
        ]
        if aurocs:
            parts.append(f"OOD {name}: AUROC {', '.join(aurocs)}")
    disputed = record.get("disputed")
    if disputed:
        parts.append(
            f"{disputed['count']} disputed test labels: {disputed['within_5']:.0f} % of them among the 5 % "
            f"least confident, AUROC {disputed['auroc']:.2f} %"
        )
    noise = record.get("noise", {}).get("selected")
    if noise:
        parts.append(
            f"wrong training labels fitted {noise['memorised']:.2f} %, found by the loss with AUROC "
            f"{noise['detect_auroc_loss']:.2f} %"
        )
    return ", ".join(parts) or "no figures (a diverged run?)"


def evaluate_trained(configs: Sequence[Any], progress: bool) -> list[tuple[Path, str]]:
    """After ``train`` or ``compare``: evaluate each classifier run of ``configs`` (finished ones;
    a sequence-to-sequence run has nothing to judge here). Returns (run folder, the command that
    adds its figures) for each run that could not be judged (:func:`lacking_lines` says them)."""
    from ..assembly import resolve_device  # lazy: loaded when this command runs
    from ..data.registry import dataset_yields  # lazy: loaded when this command runs
    from ..rundir import RunDir  # lazy: loaded when this command runs

    if not configs or dataset_yields(configs[0].data.name, configs[0].data_sections()) not in (
        "images",
        "texts",
    ):
        return []
    finished = [config for config in configs if RunDir(config.run_dir()).is_finished()]
    if not finished:
        return []
    device = str(resolve_device(configs[0].train.device))
    lacking = []
    ood = [entry.label for entry in finished[0].ood]
    noisy = finished[0].noise is not None
    # the test and dev splits, the conformal sets, each OOD set, the training split's noise
    parts = 3 + len(ood) + noisy
    detail = f" for {len(finished)} run(s): test and dev splits, selective classification, conformal sets"
    detail += f", OOD {', '.join(ood)}" if ood else ""
    detail += ", the noisy training labels" if noisy else ""
    with Steps(
        "evaluating the selected weights", parts * len(finished), "part", bar=progress, detail=detail
    ) as steps:
        for i, config in enumerate(finished):
            # What trained stands: a run that cannot be judged is said, and the command fails.
            try:
                evaluate_finished(
                    [config.run_dir()], device=device, progress=False, configs=[config], on_step=steps.step
                )
            except (ValueError, RuntimeError) as error:  # PredictError, DataError, RunDirError
                tqdm.write(f"{config.run_dir()}: not evaluated: {one_line(error)}", file=sys.stderr)
                lacking.append((Path(config.run_dir()), "evaluate"))
            steps.advance(parts * (i + 1))  # a record read back, or a run without a dev split, is done
    return lacking + shift_trained(finished, device, progress)


def lacking_lines(lacking: Sequence[tuple[Path, str]]) -> list[str]:
    """The end of a command whose runs trained but some could not be judged: which runs lack which
    figures, and per kind the one command that adds them once the cause is mended."""
    lines = []
    for command, figures in (("evaluate", "evaluation"), ("shift", "shift")):
        folders = [folder for folder, kind in lacking if kind == command]
        if not folders:
            continue
        # Several runs of one experiment: its folder, where the command judges every finished run.
        parents = {folder.parent.parent for folder in folders}
        target = folders[0] if len(folders) == 1 or len(parents) > 1 else parents.pop()
        lines.append(
            f"{len(folders)} run(s) lack their {figures} figures ({', '.join(map(str, folders))}); once the "
            f"cause above is mended, add them with: labelemb {command} {target}"
        )
    return lines
