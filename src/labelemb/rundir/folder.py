"""One run's folder (:class:`RunDir`): every read and write of its files (see :mod:`labelemb.rundir`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import yaml
from filelock import FileLock, Timeout
from torch import Tensor

from ..metrics.figures import evaluation_in_percent
from .files import (
    RunDirError,
    atomic_write,
    differing_values,
    listed_changes,
    other_run_refusal,
    read_json,
    read_safetensors,
    read_torch,
    remove_empty_folders,
    save_safetensors,
    save_torch,
    write_text,
    yaml_problem,
)
from .names import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    CONFORMAL_FILE,
    DATA_FILE,
    EVALUATION_FILE,
    LEGACY_VALUES,
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OUTPUTS_DIR,
    RECORD_KEYS,
    SELECTED_MODEL_FILE,
    SHIFT_FILE,
    SUMMARY_FILE,
    SUMMARY_KEYS,
    TENSORS_FILE,
    TMP_SUFFIX,
    VOCABULARY_FILE,
    VOCABULARY_FILES,
)


class Config(Protocol):
    """What the run folder needs of a config: a pydantic model that can say what affects results."""

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...

    @classmethod
    def model_validate(cls, obj: Any) -> Config: ...

    def comparable(self) -> dict[str, Any]: ...


class RunDir:
    """One run's folder. Nothing in it is ever overwritten by a run with a different config."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ reading

    def is_finished(self) -> bool:
        return self.file(SUMMARY_FILE).is_file()

    def read_config(self) -> dict[str, Any] | None:
        """The saved ``config.yaml`` (None if there is none), with :data:`LEGACY_VALUES` filled in."""
        path = self.file(CONFIG_FILE)
        if not path.exists():
            return None
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise RunDirError(
                f"{path} is not valid YAML ({yaml_problem(error)}); restore it or delete the run folder"
            ) from None
        if not isinstance(raw, dict):
            raise RunDirError(f"{path} does not hold a config mapping; restore it or delete the run folder")
        for keys, value in LEGACY_VALUES.items():
            node = raw
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(keys[-1], value)
        return raw

    def read_valid_config(self, config_type: type[Config]) -> Config:
        """The saved ``config.yaml`` validated as ``config_type`` (a :class:`RunDirError` naming the
        file if it is missing or not a config this version reads)."""
        raw = self.read_config()
        if raw is None:
            raise RunDirError(f"{self.path} has no {CONFIG_FILE}; it is not a labelemb run folder")
        try:
            return config_type.model_validate(raw)
        except ValueError as error:  # pydantic's ValidationError
            first = str(error).splitlines()[1:3]
            raise RunDirError(
                f"{self.file(CONFIG_FILE)} is not a valid config ({' '.join(s.strip() for s in first)}); "
                "restore it or delete the run folder"
            ) from None

    def read_summary(self, required: Iterable[str] = ()) -> dict[str, Any]:
        """The finished run's ``summary.json``, checked to hold what every reader needs and ``required``."""
        path = self.file(SUMMARY_FILE)
        if not path.exists():
            raise FileNotFoundError(
                f"{self.path} is not a finished run: it has no {SUMMARY_FILE} "
                "(train one with `labelemb train`, or resume it to the end)"
            )
        summary = read_json(path)
        keys = (*SUMMARY_KEYS, *required)
        missing = [key for key in keys if not isinstance(summary, dict) or key not in summary]
        if missing:
            raise RunDirError(
                f"{path} is damaged: it lacks {', '.join(missing)}; delete it to train the run's "
                "last part again (the checkpoint is kept), or restore it"
            )
        return summary

    def read_metrics(self, required: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The evaluation records of ``metrics.jsonl``; each must hold the progress keys and ``required``."""
        path = self.file(METRICS_FILE)
        if not path.exists():
            raise RunDirError(f"{self.path} has no {METRICS_FILE}; it is not a labelemb run folder")
        records = []
        keys = (*RECORD_KEYS, *required)
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise RunDirError(f"{path} line {number} is not JSON; the file is damaged") from None
            missing = [key for key in keys if not isinstance(record, dict) or key not in record]
            if missing:
                raise RunDirError(f"{path} line {number} lacks {', '.join(missing)}; the file is damaged")
            records.append(record)
        if not records:
            raise RunDirError(f"{path} holds no evaluation; the file is damaged")
        return records

    def read_tensors(self) -> dict[str, Tensor]:
        """The method's saved tensors (empty if it saved none)."""
        saved = read_safetensors(self.file(TENSORS_FILE), "the file is damaged")
        return {} if saved is None else saved[0]

    def read_conformal(self) -> tuple[dict[str, Tensor], dict[str, str]] | None:
        """The dev split's recorded conformal scores and their metadata (None if it has none):
        what :mod:`labelemb.predict.sets` calibrates prediction sets with."""
        fix = "delete it, and labelemb evaluate (or predict --sets) records it anew"
        return read_safetensors(self.file(CONFORMAL_FILE), fix)

    def read_weights(self) -> dict[str, Tensor]:
        return read_torch(self.file(MODEL_FILE))

    def read_selected_weights(self) -> tuple[int, dict[str, Tensor]] | None:
        """The step and weights of the check the run selected so far (None if it kept none)."""
        path = self.file(SELECTED_MODEL_FILE)
        if not path.exists():
            return None
        saved = read_torch(path)
        if not isinstance(saved, dict) or not isinstance(saved.get("weights"), dict):
            raise RunDirError(f"{path} does not hold a step and weights; the file is damaged")
        return int(saved["step"]), saved["weights"]

    def read_evaluation(self) -> dict[str, Any] | None:
        """The run's ``evaluation.json`` (None if it has none), in percent whatever its format."""
        return evaluation_in_percent(self._read_record(EVALUATION_FILE, "an evaluation"))

    def read_shift(self) -> dict[str, Any] | None:
        """The run's ``shift.json`` (None if it has none)."""
        return self._read_record(SHIFT_FILE, "a shift evaluation")

    def _read_record(self, name: str, what: str) -> dict[str, Any] | None:
        path = self.file(name)
        if not path.exists():
            return None
        record = read_json(path)
        if not isinstance(record, dict):
            raise RunDirError(f"{path} does not hold {what}; delete it to compute it anew")
        return record

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint (None if there is none), checked to be a labelemb checkpoint."""
        path = self.file(CHECKPOINT_FILE)
        if not path.exists():
            return None
        checkpoint = read_torch(path, what="checkpoint ", fix="delete it to start this run afresh")
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise RunDirError(
                f"{path} is not a labelemb checkpoint of format {CHECKPOINT_FORMAT}; "
                "delete it to start afresh"
            )
        return checkpoint

    # ------------------------------------------------------------------ writing

    def check_config(self, config: Config) -> None:
        """Refuse (:class:`RunDirError`) if the folder holds a run of a config that differs in what
        affects results (not in output paths or progress bars)."""
        changed = self.config_differences(config)
        if changed:
            held = f"a run with a different config (differs in: {listed_changes(changed)})"
            raise RunDirError(other_run_refusal(self.path, held))

    def config_differences(self, config: Config) -> dict[str, tuple[Any, Any]]:
        """The dotted keys in which ``config`` differs from the run this folder holds, in what
        affects results, each with the run's value and ``config``'s (none if it holds no run)."""
        if not self.file(CONFIG_FILE).exists():
            return {}
        # Validating fills in keys added to the config since that run was written, with their defaults.
        saved = self.read_valid_config(type(config)).comparable()
        return differing_values(saved, config.comparable())

    def check_writable(self) -> None:
        """Raise :class:`RunDirError` unless this folder can be created and written; done before any
        data is read, and without creating anything."""
        existing = self.path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        fix = "choose another --output-dir (output_dir=...)"
        if not existing.is_dir():
            raise RunDirError(f"cannot create the run folder {self.path}: {existing} is a file; {fix}")
        try:
            handle, probe = tempfile.mkstemp(dir=existing, prefix=".labelemb-probe.")
            os.close(handle)
            Path(probe).unlink(missing_ok=True)
        except OSError as error:
            raise RunDirError(
                f"cannot write the run folder {self.path}: {existing} is not writable "
                f"({error.strerror}); {fix} or make it writable"
            ) from None

    def claim(self, wait: bool) -> FileLock | None:
        """Own this folder while training it: its lock, acquired (release it when done).

        Returns None if another process owns it and ``wait`` is False; with ``wait``, blocks
        until that process lets go (it has finished the run, or died).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.file(LOCK_FILE), is_singleton=True)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return None
        return lock

    def let_go(self, lock: FileLock) -> None:
        """Release ``lock`` (from :meth:`claim`); a finished run's folder keeps no lock file.

        Removing it is safe: a process still waiting on the old file gets it next, finds the run
        finished and reads it back, as does any process that claims a new one; neither trains.
        """
        lock.release()
        if lock.lock_counter == 0 and self.is_finished():
            self.file(LOCK_FILE).unlink(missing_ok=True)

    def start(self, config: Config) -> None:
        """Create the folder, clear torn temporaries (the caller owns it: :meth:`claim`), and
        write its ``config.yaml`` once."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.rglob(f".*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        if not self.file(CONFIG_FILE).exists():
            write_text(
                self.file(CONFIG_FILE), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
            )

    def check_data(self, fingerprint: str | None) -> None:
        """Refuse (:class:`RunDirError`) to go on with a run started on data of other content under
        the same file names (a config names files, not what is in them); record it for a new run."""
        if fingerprint is None:
            return
        if self.file(DATA_FILE).exists():
            self.refuse_other_data(fingerprint)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            write_text(self.file(DATA_FILE), json.dumps({"fingerprint": fingerprint}) + "\n")

    def recorded_fingerprint(self) -> str | None:
        """The content digest of the data this run trained on, if it recorded one (:meth:`check_data`)."""
        path = self.file(DATA_FILE)
        return read_json(path).get("fingerprint") if path.exists() else None

    def refuse_other_data(self, fingerprint: str) -> None:
        """Refuse (:class:`RunDirError`) a run, finished or not, recorded on data whose content digest
        is not ``fingerprint``: its numbers are not this data's, and it must not go on with it."""
        saved = self.recorded_fingerprint()
        if saved is None or saved == fingerprint:
            return
        state = "finished run" if self.is_finished() else "run"
        held = (
            f"a {state} with a different config: it trained on data whose content differs from the "
            f"files named now (digest {str(saved)[:12]}... then, {fingerprint[:12]}... now), so its "
            "numbers are not this data's"
        )
        raise RunDirError(other_run_refusal(self.path, held))

    def discard_unstarted(self, first_created: Path | None) -> None:
        """After an error before training: remove this folder if no run started in it, and the
        folders above it that are empty, up to ``first_created`` (the highest one this command
        made; None: the folder was there before, so it is left as it is)."""
        if first_created is None or self.is_started():
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if self.path != first_created:
            remove_empty_folders(self.path.parent, first_created)  # a sibling run keeps its own

    def is_started(self) -> bool:
        return self.file(CONFIG_FILE).exists()

    def has_checkpoint(self) -> bool:
        return self.file(CHECKPOINT_FILE).is_file()

    def drop_checkpoint(self, selected_weights: bool = True) -> None:
        """Remove a finished run's checkpoint (its optimiser state: the largest file, what
        ``train.continue_from`` starts from) and its selected check's weights unless kept (what a
        prediction reads; tuning trials drop both). An unfinished run keeps both to resume."""
        if self.is_finished():
            self.file(CHECKPOINT_FILE).unlink(missing_ok=True)
            if selected_weights:
                self.file(SELECTED_MODEL_FILE).unlink(missing_ok=True)

    def copy_records_from(self, source: RunDir) -> None:
        """Copy into this (not yet started) folder what ``source`` recorded besides its checkpoint:
        its evaluation records, data digest, vocabularies and checked outputs. Each file is copied
        atomically; a copy cut short is done again on the next start (the folder has no config yet)."""
        if self.is_started():
            raise RunDirError(f"{self.path} already holds a run; nothing was copied into it")
        names = [METRICS_FILE, DATA_FILE, VOCABULARY_FILE, *VOCABULARY_FILES, SELECTED_MODEL_FILE]
        names += [str(p.relative_to(source.path)) for p in sorted(source.file(OUTPUTS_DIR).rglob("*"))]
        for name in names:
            origin = source.file(name)
            if origin.is_file():
                atomic_write(self.file(name), lambda tmp, origin=origin: shutil.copyfile(origin, tmp))

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        write_text(self.file(METRICS_FILE), "".join(json.dumps(r) + "\n" for r in records))

    def write_text_file(self, name: str, text: str) -> None:
        """A text file of the run (a vocabulary, decoded output), written atomically; ``name`` may
        name a subfolder."""
        write_text(self.file(name), text)

    def write_selected_weights(self, weights: dict[str, Tensor], step: int) -> None:
        """The weights of the check at ``step``, now the run's selected one."""
        save_torch(self.file(SELECTED_MODEL_FILE), {"step": step, "weights": weights})

    def write_evaluation(self, record: dict[str, Any]) -> None:
        write_text(self.file(EVALUATION_FILE), json.dumps(record, indent=2) + "\n")

    def write_shift(self, record: dict[str, Any]) -> None:
        write_text(self.file(SHIFT_FILE), json.dumps(record, indent=2) + "\n")

    def write_conformal(self, scores: dict[str, Tensor], metadata: dict[str, str]) -> None:
        save_safetensors(self.file(CONFORMAL_FILE), scores, metadata)

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch(self.file(CHECKPOINT_FILE), {"format": CHECKPOINT_FORMAT, **state})

    def write_results(
        self, weights: dict[str, Tensor], tensors: dict[str, Tensor], summary: dict[str, Any]
    ) -> None:
        """A finished run's files: the method's tensors, the weights, and last the summary (it marks
        the run done)."""
        if tensors:
            tensors = {name: t.detach().float().cpu().contiguous() for name, t in tensors.items()}
            save_safetensors(self.file(TENSORS_FILE), tensors)
        save_torch(self.file(MODEL_FILE), weights)
        write_text(self.file(SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")


def outputs_folder(step: int) -> str:
    """The folder, relative to the run's, of what the check at ``step`` produced."""
    return f"{OUTPUTS_DIR}/step{step}"


def run_dirs(experiment_dir: str | Path) -> list[RunDir]:
    """The finished runs under ``experiment_dir/<method>/seed<N>/``."""
    return [RunDir(p.parent) for p in sorted(Path(experiment_dir).glob(f"*/seed*/{SUMMARY_FILE}"))]
