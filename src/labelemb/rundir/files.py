"""Files written whole or not at all, and the small helpers of reading and making run folders.

Every file is written atomically (a temporary file beside it, renamed over the old one), so a crash
leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..aligned import aligned
from .names import TMP_SUFFIX


class RunDirError(RuntimeError):
    """The run folder holds something this run must not overwrite or cannot resume from."""


def yaml_problem(error: Exception) -> str:
    """A YAML (or decoding) error in one line: what is wrong and where."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def first_missing(path: Path) -> Path | None:
    """The highest folder of ``path`` (itself included) that does not exist yet; None if it exists:
    what a command that creates ``path`` must remove again if it fails."""
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def remove_empty_folders(deepest: Path, top: Path) -> None:
    """Remove ``deepest`` and the folders above it up to ``top``, each only if it is empty."""
    for folder in [deepest, *deepest.parents]:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == top:
            return


def differing_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    """The dotted keys at which two nested mappings differ."""
    return set(differing_values(a, b, prefix))


def differing_values(a: Any, b: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """The dotted keys at which two nested mappings differ, each with its value in ``a`` and in
    ``b`` (None where one lacks the key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        values: dict[str, tuple[Any, Any]] = {}
        for key in set(a) | set(b):
            values.update(differing_values(a.get(key), b.get(key), f"{prefix}{key}."))
        return values
    return {} if a == b else {prefix.rstrip("."): (a, b)}


#: The differences a refusal spells out with their values; the rest it counts.
SHOWN_CHANGES = 3


def listed_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """``train.batch_size 4096 -> 119, train.lr 0.001 -> 0.01``: the first :data:`SHOWN_CHANGES`
    dotted keys with the old value and the new, as a key=value override would spell them, and a
    count of the rest (a line, not a diff of two configs)."""
    keys = sorted(changes)
    listed = [f"{key} {_spelled(changes[key][0])} -> {_spelled(changes[key][1])}" for key in keys]
    rest = len(keys) - SHOWN_CHANGES
    return ", ".join(listed[:SHOWN_CHANGES]) + (f" and {rest} more key(s)" if rest > 0 else "")


def _spelled(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def other_run_refusal(path: Path, held: str) -> str:
    """The refusal of a run folder that holds ``held`` (a run of another config, or data), with the
    two ways on; nothing is ever removed for the user, whose runs they may be."""
    return (
        f"{path} already holds {held}. Nothing was overwritten: to keep both, rerun with another "
        f"experiment name (experiment=NAME) or --output-dir; to replace it, move or remove {path} first."
    )


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: The temporary files of the writes under way, each named here before it exists, so that an
#: interrupt (Ctrl-C) landing anywhere in a write, even between two of its lines, leaves none.
_PENDING: set[Path] = set()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``os.replace`` is atomic on POSIX, so readers see the old file or the new one, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
    _PENDING.add(tmp)
    try:
        os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        write(tmp)
        # Owner-only while written (as mkstemp makes it); outputs get the user's usual mode.
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _PENDING.discard(tmp)  # not in a finally: an interrupt before the unlink leaves it pending
        raise
    _PENDING.discard(tmp)


def remove_interrupted_writes() -> list[Path]:
    """Remove the temporary files of the writes an interrupt stopped (the command line calls it on
    Ctrl-C, and every process at its exit); the paths removed."""
    removed = []
    for tmp in list(_PENDING):
        if tmp.exists():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        _PENDING.discard(tmp)
    return removed


atexit.register(remove_interrupted_writes)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """``tensors`` (CPU, contiguous) as a safetensors file, with its string ``metadata``."""
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors, each in PyTorch's own aligned memory (:mod:`labelemb.aligned`),
    and its metadata (empty where it has none); safetensors' error for a torn or foreign file."""

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        return {name: aligned(handle.get_tensor(name)) for name in handle.keys()}, metadata


def load_tensors(path: Path) -> Any:
    """A torch file's tensors (in dicts, lists and numbers) on the CPU, with ``weights_only``: a
    pickle of anything else is refused, never run. torch's notes on the pickle's protocol are
    kept quiet: a refusal says it in one line (:func:`torch_file_problem`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def torch_file_problem(error: BaseException) -> str:
    """Why :func:`load_tensors` refused a file, in one line. A pickle that holds more than tensors
    (objects whose loading could run code) is named so, never with torch's advice to load it
    with ``weights_only`` off."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in " ".join(lines):
        return (
            "it is a pickle of Python objects beyond tensors, which labelemb never loads since "
            "loading them could run code"
        )
    return lines[0].split(". ")[0] if lines else type(error).__name__


def read_json(path: Path) -> Any:
    """A run file's JSON; a :class:`RunDirError` naming it where it is not JSON."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RunDirError(f"{path} is not valid JSON ({error}); the file is damaged") from None


def read_torch(path: Path, what: str = "", fix: str = "the file is damaged") -> Any:
    """A run's torch file (:func:`load_tensors`); a :class:`RunDirError` saying which and ``fix``."""
    try:
        return load_tensors(path)
    except Exception as error:  # a torn or foreign file: say which and what to do
        raise RunDirError(f"cannot read {what}{path} ({torch_file_problem(error)}); {fix}") from None


def read_safetensors(path: Path, fix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """A run's safetensors file (:func:`load_safetensors`), None where it has none; a
    :class:`RunDirError` naming a torn or foreign one, and ``fix``."""
    if not path.exists():
        return None
    try:
        return load_safetensors(path)
    except Exception as error:  # a torn or foreign file: name it
        raise RunDirError(f"cannot read {path} ({error}); {fix}") from None
