"""The run folder: its file names, and every read and write of them.

A run of one (method, seed) lives in ``<output_dir>/<experiment>/<method>/seed<N>/``:

- ``config.yaml``: the resolved config, written once when the run starts;
- ``metrics.jsonl``: one line per evaluation (step, epoch, examples, seconds, metrics, loss terms);
- ``checkpoint.pt``: everything a killed run needs to resume, rewritten at every evaluation;
- ``model.pt``: the final weights (backbone ``model.*`` and method ``method.*``);
- ``label_representation.safetensors``: the tensors the method hands over (``representation``,
  and for label_embedding the raw ``embedding``);
- ``summary.json``: the result; written last, so its presence marks a finished run.

Every file is written atomically (a temporary file renamed over the old one), so a crash leaves
the old file or the new one, never a torn one. Everything that reads or writes a run goes
through :class:`RunDir`; the rest of the library never spells a file name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from torch import Tensor

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
TENSORS_FILE = "label_representation.safetensors"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FORMAT = 1
TMP_SUFFIX = ".tmp"

#: Config keys added after run folders were first written, with the value those older runs had:
#: a config.yaml without the key was trained that way, whatever today's default is.
LEGACY_VALUES: dict[tuple[str, ...], Any] = {("train", "adam"): "classic"}


class RunDirError(RuntimeError):
    """The run folder holds something this run must not overwrite or cannot resume from."""


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
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise RunDirError(
                f"{path} is not valid YAML ({error}); restore it or delete the run folder"
            ) from None
        if not isinstance(raw, dict):
            raise RunDirError(f"{path} does not hold a config mapping; restore it or delete the run folder")
        for keys, value in LEGACY_VALUES.items():
            node = raw
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(keys[-1], value)
        return raw

    def read_summary(self) -> dict[str, Any]:
        path = self.file(SUMMARY_FILE)
        if not path.exists():
            raise FileNotFoundError(
                f"{self.path} is not a finished run: it has no {SUMMARY_FILE} "
                "(train one with `labelemb train`, or resume it to the end)"
            )
        return self._read_json(path)

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.file(METRICS_FILE)
        records = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    raise RunDirError(f"{path} line {number} is not JSON; the file is damaged") from None
        return records

    def read_tensors(self) -> dict[str, Tensor]:
        """The method's saved tensors (empty if it saved none)."""
        from safetensors.torch import load_file

        path = self.file(TENSORS_FILE)
        if not path.exists():
            return {}
        try:
            return load_file(str(path))
        except Exception as error:  # a torn or foreign file: name it
            raise RunDirError(f"cannot read {path} ({error}); the file is damaged") from None

    def read_weights(self) -> dict[str, Tensor]:
        return self._read_torch(self.file(MODEL_FILE))

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint (None if there is none), checked to be a labelemb checkpoint."""
        path = self.file(CHECKPOINT_FILE)
        if not path.exists():
            return None
        checkpoint = self._read_torch(path, what="checkpoint ", fix="delete it to start this run afresh")
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
        saved_raw = self.read_config()
        if saved_raw is None:
            return
        # Validating fills in keys added to the config since that run was written, with their defaults.
        saved = type(config).model_validate(saved_raw).comparable()
        wanted = config.comparable()
        if saved != wanted:
            changed = sorted(differing_keys(saved, wanted))
            raise RunDirError(
                f"{self.path} already holds a run with a different config (differs in: "
                f"{', '.join(changed)}). Nothing was overwritten: choose another output_dir or "
                "experiment name, or delete that folder."
            )

    def start(self, config: Config) -> None:
        """Create the folder, clear torn temporaries, and write its ``config.yaml`` once."""
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(f".*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        if not self.file(CONFIG_FILE).exists():
            write_text(
                self.file(CONFIG_FILE), yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
            )

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        write_text(self.file(METRICS_FILE), "".join(json.dumps(r) + "\n" for r in records))

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        save_torch(self.file(CHECKPOINT_FILE), {"format": CHECKPOINT_FORMAT, **state})

    def write_results(
        self, weights: dict[str, Tensor], tensors: dict[str, Tensor], summary: dict[str, Any]
    ) -> None:
        """A finished run's files: the method's tensors, the weights, and last the summary (it marks
        the run done)."""
        if tensors:
            from safetensors.torch import save_file

            tensors = {name: t.detach().float().cpu().contiguous() for name, t in tensors.items()}
            atomic_write(self.file(TENSORS_FILE), lambda tmp: save_file(tensors, str(tmp)))
        save_torch(self.file(MODEL_FILE), weights)
        write_text(self.file(SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise RunDirError(f"{path} is not valid JSON ({error}); the file is damaged") from None

    @staticmethod
    def _read_torch(path: Path, what: str = "", fix: str = "the file is damaged") -> Any:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a torn or foreign file: say which and what to do
            raise RunDirError(f"cannot read {what}{path} ({error}); {fix}") from None


def run_dirs(experiment_dir: str | Path) -> list[RunDir]:
    """The finished runs under ``experiment_dir/<method>/seed<N>/``."""
    return [RunDir(p.parent) for p in sorted(Path(experiment_dir).glob(f"*/seed*/{SUMMARY_FILE}"))]


def differing_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    """The dotted keys at which two nested mappings differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys: set[str] = set()
        for key in set(a) | set(b):
            keys |= differing_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return keys
    return set() if a == b else {prefix.rstrip(".")}


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``os.replace`` is atomic on POSIX, so readers see the old file or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp (and some writers) make owner-only files; outputs get the user's usual mode.
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
