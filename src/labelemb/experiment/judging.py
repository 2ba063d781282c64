"""Finished runs judged beyond their error, from their saved weights: the evaluation (selective
classification, conformal sets, OOD, disputed test labels, noisy training labels) and the scores
under shift, each kept in its run folder, for the Python API and the commands alike."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from ..arguments import parse_names
from ..assembly import resolve_device
from ..config import OodSetConfig
from ..data import DATASETS, dataset_key
from ..data.corruptions.suites import conditions
from ..data.registry import dataset_yields
from ..evaluation.run import evaluate_run
from ..evaluation.shift import shift_run
from ..predict.source import run_config
from ..progress import Steps, draws_bar, one_line, says_lines
from ..rundir import RunDir
from ..tracking import log_evaluation as to_trackers
from ..tracking import log_table
from .tables import Comparison, finished_folders, write_comparison


@dataclass(repr=False)
class Judged:
    """What :func:`evaluate` or :func:`shift` computed: each run folder's record (evaluation.json
    or shift.json; ``kind`` says which) and, for an experiment folder, its comparison written
    anew. A shell shows it as one line."""

    folders: list[Path]
    records: list[dict[str, Any]]
    comparison: Comparison | None
    line: Callable[[dict[str, Any]], str]
    kind: str = "evaluation"

    def __repr__(self) -> str:
        # Short: the dataclass's own repr printed every record and the comparison's rows.
        shown = self.folders[0] if len(self.folders) == 1 else self.folders[0].parent.parent
        comparison = ", comparison=written anew" if self.comparison is not None else ""
        return f"Judged(kind={self.kind!r}, runs={len(self.folders)}, folder={str(shown)!r}{comparison})"

    def lines(self) -> list[str]:
        """A line per run: its folder and its headline figures."""
        return [f"{folder}: {self.line(record)}" for folder, record in zip(self.folders, self.records)]


#: An out-of-distribution set as :func:`evaluate` takes it: a data set's name or a file's (or
#: folder's) path, as ``--ood`` takes it; a mapping of its entry (``{"data": "mnist", "limit": 500}``,
#: a config's ``ood:`` entry); or the typed entry itself.
OodSource = str | PurePath | Mapping[str, Any] | OodSetConfig


def evaluate(
    path: str | Path,
    ood: OodSource | Sequence[OodSource] | None = None,
    *,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Judged:
    """Judge a finished run folder, or every finished run of an experiment folder, beyond its error
    from its selected weights (``labelemb evaluate``): selective classification, conformal sets and
    each OOD set of ``ood`` (one set or a list: a data set's name, a file or folder of inputs, a
    mapping of a config's ``ood:`` entry or an :class:`~labelemb.config.OodSetConfig`; by default
    the sets the runs' config names). A record that still fits its weights and code is read back
    unless ``refresh``. For an experiment folder the comparison is written again (and logged)."""
    path = Path(path)
    sets = None if ood is None else ood_sets(ood)  # a mistake in them: one line, before any run is read
    folders = finished_folders(path)
    records = evaluate_finished(
        folders, sets, data_dir=data_dir, refresh=refresh, device=device, progress=progress
    )
    comparison = None
    if len(folders) > 1 or folders[0] != path:
        comparison = write_comparison(path)
        log_comparison(path, folders[0])
    return Judged(folders, records, comparison, evaluation_line)


def shift(
    path: str | Path,
    corruptions: str | Sequence[str] | None = None,
    *,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Judged:
    """Score a finished run folder, or every finished run of an experiment folder, on corrupted
    copies of its test split (``labelemb shift``): ``corruptions`` are suites (mnist-c, severities,
    text), names, name@3 or name@all, as a list or one comma-separated text (by default the runs'
    ``shift:`` entries, else every suite that fits their data). For an experiment folder the
    comparison is written again."""
    if isinstance(corruptions, str):  # "rotate@1, brightness", as --corruptions takes them: not letters
        corruptions = parse_names(corruptions)
    path = Path(path)
    folders = finished_folders(path)
    records = shift_finished(
        folders, corruptions, data_dir=data_dir, refresh=refresh, device=device, progress=progress
    )
    comparison = write_comparison(path) if len(folders) > 1 or folders[0] != path else None
    return Judged(folders, records, comparison, shift_line, "shift")


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
    """Each finished run folder's evaluation (:func:`labelemb.evaluation.run.evaluate_run`),
    with a progress bar over the runs. A record computed here (not one read back as it was) goes to
    the trackers its run's config names (:func:`labelemb.tracking.log_evaluation`): ``configs``,
    one per folder, or each run's saved config; ``on_step``: handed to each evaluation (its parts,
    for a display of the caller's)."""

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

    return run_config(RunDir(folder))


def log_evaluation(config: Any, folder: Path, record: dict[str, Any]) -> None:
    """``record`` to the trackers ``config`` names; no tracker package is imported without one."""
    if config.train.log_to:
        to_trackers(config, folder, record)


def log_comparison(experiment_dir: Path, folder: Path) -> None:
    """The comparison table written anew (with its tables of the evaluations) to the trackers the
    runs' config names (``folder``'s, one of them), beside the one ``compare`` logged."""
    config = saved_config(folder)
    if config.train.log_to:
        log_table(config, experiment_dir, "comparison")


def ood_sets(ood: OodSource | Sequence[OodSource]) -> list[OodSetConfig]:
    """``evaluate``'s ``ood`` as typed entries: one set, or a list of them."""
    many = [ood] if isinstance(ood, (str, PurePath, Mapping, OodSetConfig)) else list(ood)
    return [ood_entry(entry) for entry in many]


def ood_entry(entry: OodSource) -> OodSetConfig:
    """One OOD set as its typed entry, or a ValueError in one line that says what is taken."""
    if isinstance(entry, OodSetConfig):
        return entry
    if isinstance(entry, (str, PurePath)):
        return ood_set(str(entry))
    if isinstance(entry, Mapping):
        try:
            return OodSetConfig.model_validate(dict(entry))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"]))
            message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix of a check's words
            raise ValueError(
                f"ood set {dict(entry)!r}: {where + ': ' if where else ''}{message}; give "
                "{'data': 'mnist'} or {'path': 'inputs.npz'} (with split, name, limit if you like)"
            ) from None
    raise ValueError(
        f"ood set {entry!r} (a {type(entry).__name__}): give a data set's name, a file's path, a "
        "mapping such as {'data': 'mnist'} or an OodSetConfig"
    )


def ood_set(text: str) -> Any:
    """``--ood``'s value as an ood set: an existing file or folder, a data set's name, or what looks
    like a file (a suffix, a folder in it: looked for as data files are, and named if not found)."""

    path = Path(text).expanduser()
    if path.exists() or (dataset_key(text) not in DATASETS and (path.suffix or len(path.parts) > 1)):
        return OodSetConfig(path=text)
    return OodSetConfig(data=text)


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
    # A command says these lines even with --no-progress; a library call with progress=False, none.
    with Steps(
        "evaluating the selected weights",
        parts * len(finished),
        "part",
        bar=progress,
        lines=says_lines(progress),
        detail=detail,
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


def shift_finished(
    folders: Sequence[Path],
    corruptions: Sequence[str] | None = None,
    *,
    data_dir: str | None = None,
    refresh: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Each finished run folder's shift record (:func:`labelemb.evaluation.shift.shift_run`), with a
    progress bar over the runs (and over one run's conditions, for a single run)."""

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

    chosen = [c for c in configs if c.shift and RunDir(c.run_dir()).is_finished()]
    if not chosen:
        return []

    count = len(conditions(chosen[0].shift, dataset_yields(chosen[0].data.name, chosen[0].data_sections())))
    detail = (
        f" ({', '.join(chosen[0].shift)}) for {len(chosen)} run(s); a corrupted copy of the test split is "
        "built the first time it is needed and read from the cache after"
    )
    lacking = []
    lines = says_lines(progress)
    with Steps(
        "scoring under shift", count * len(chosen), "condition", bar=progress, lines=lines, detail=detail
    ) as steps:
        for i, config in enumerate(chosen):
            try:
                shift_run(config.run_dir(), device=device, on_step=steps.step)
            except (ValueError, RuntimeError) as error:  # PredictError, DataError, RunDirError
                tqdm.write(f"{config.run_dir()}: not shifted: {one_line(error)}", file=sys.stderr)
                lacking.append((Path(config.run_dir()), "shift"))
            steps.advance(count * (i + 1))  # conditions read back are done at once
    return lacking
