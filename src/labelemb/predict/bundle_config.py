"""What a bundle's ``config.yaml`` may make labelemb import, run or read, and the config a bundle is
written with.

A bundle comes from someone else, so its config is data, and nothing it names runs or is read
unless it is labelemb's own or inside the bundle:

- a ``custom`` backbone's factory (``model.factory``) is imported and called only when the user
  trusts that very factory (``trust_factory``, ``--trust-factory``); the refusal comes before
  anything of the bundle is validated, imported or built;
- a text encoder (``encoder``, of a model or a method) must be one labelemb knows by name
  (:data:`labelemb.hub.ENCODER_PACKAGES`): a folder's sentence-transformers model names the
  Python classes that loading it imports;
- a file a model or method option names (an option typed as a path: a method's ``vectors``,
  ``embedding``) must lie inside the bundle, and is read from there;
- the data files (``data.files``, ``data.text``'s vocabularies, read by ``--split`` only; and the
  files of ``noise``, ``ood`` and ``disputed_test_labels``, never read from a bundle) are names
  relative to the user's data folder (``--data-dir``, ``$LABELEMB_DATA``): never absolute, never
  climbing out (``..``); the exporter's ``data.dir`` and ``data.files.cache_dir`` are not used;
- ``source_folder`` (which a config file's reader sets, and which goes on the import path while a
  backbone is built) is refused.

Everything else names registered things only (data sets, models, methods, tokenizers), checked by
the config's own validation. A run folder is the user's own output and is read as it trained.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path, PurePath
from typing import Any

from ..config import RunConfig
from ..hub import ENCODER_PACKAGES
from ..methods import method_class
from ..models import model_class
from ..models.custom import CustomBackbone
from ..rundir import TENSORS_FILE
from .description import RE_EXPORT, bundle_file
from .source import PredictError, read_yaml

CONFIG_NAME = "config.yaml"
#: The option a model or method names its text encoder with.
ENCODER_OPTION = "encoder"
#: The files of ``data.text`` (a sequence corpus's given vocabularies).
VOCABULARY_KEYS = ("source_vocabulary", "target_vocabulary")


def read_bundle_config(folder: Path, trust_factory: str | None) -> RunConfig:
    """The config of the bundle ``folder``, checked as the module docstring says; an option file
    inside the bundle is named by its absolute path."""
    path = bundle_file(folder, CONFIG_NAME, "config")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise PredictError(f"{path} does not hold a config mapping; {RE_EXPORT}")
    check_factory(raw, folder, trust_factory)
    if "source_folder" in raw:
        raise PredictError(f"{path}: source_folder is not a key of a bundle's config; {RE_EXPORT}")
    config = _validated(raw, path)
    check_encoders(config, lambda where, name: f"{path}: {where} {name!r}")
    values = config.model_dump(mode="json")
    values["data"]["dir"] = None  # the exporter's folder: --data-dir or $LABELEMB_DATA here
    _drop_cache_folder(values)
    _map_data_names(values, lambda where, name: _staying_name(path, where, name))
    for place, key, where in list(_file_options(config, values)):
        place[key] = str(bundle_file(folder, str(place[key]), where))
    return _validated(values, path)


def check_factory(raw: dict[str, Any], folder: Path, trust_factory: str | None) -> None:
    """Refuse a bundle whose backbone a ``custom`` factory builds, unless ``trust_factory`` names
    that factory: the one check made before anything of the bundle is used."""
    model = raw.get("model")
    if not isinstance(model, dict) or not _is_custom(model.get("name")):
        return
    factory = model.get("factory")
    if isinstance(factory, str) and factory == trust_factory:
        return
    trusted = f" (you trusted {trust_factory!r}, another one)" if trust_factory else ""
    raise PredictError(
        f"{folder}: its backbone is built by the custom factory {factory!r}{trusted}, code the bundle "
        "names but does not hold; labelemb imports and runs it only if you trust it: pass "
        f"--trust-factory {factory} (labelemb.load(..., trust_factory={factory!r}))"
    )


def _is_custom(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    try:
        return model_class(name) is CustomBackbone
    except ValueError:  # not a registered backbone: the config's validation refuses it
        return False


def _validated(raw: dict[str, Any], path: Path) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValueError as error:
        problem = " ".join(str(error).split()[:40])
        raise PredictError(f"{path} is not a config this labelemb reads ({problem})") from None


def check_encoders(config: RunConfig, refusal: Callable[[str, str], str]) -> None:
    """Refuse a text encoder that labelemb does not know by name (``refusal(where, name)`` begins
    the message)."""
    for section in ("model", "method"):
        name = config.options(section).get(ENCODER_OPTION)  # type: ignore[arg-type]
        if name is not None and name not in ENCODER_PACKAGES:
            raise PredictError(
                f"{refusal(f'{section}.{ENCODER_OPTION}', name)} is not a text encoder labelemb knows "
                f"by name ({', '.join(ENCODER_PACKAGES)}); a bundle names no encoder folder, since "
                "loading a folder's model imports the classes it names: predict with the run folder"
            )


def _drop_cache_folder(values: dict[str, Any]) -> None:
    files = values["data"].get("files")
    if isinstance(files, dict):
        files["cache_dir"] = None


def _map_data_names(values: dict[str, Any], change: Callable[[str, str], str]) -> None:
    """Each data file name of a config dump (``data.files``' splits and path, ``data.text``'s
    vocabulary files; the files of the noise, the OOD sets and the disputed test labels, which a
    bundle never reads but names as the run did) replaced by ``change(its dotted key, the name)``."""
    data = values["data"]
    places = [(data.get("files"), "data.files", ("train", "dev", "test", "path"))]
    places += [
        (data.get("text"), "data.text", VOCABULARY_KEYS),
        (values.get("noise"), "noise", ("labels", "matrix")),
    ]
    places += [(values, "", ("disputed_test_labels",))]
    places += [(entry, f"ood[{i}]", ("path",)) for i, entry in enumerate(values.get("ood") or [])]
    for options, section, keys in places:
        for key in keys:
            given = (options or {}).get(key)
            where = f"{section}.{key}" if section else key
            if isinstance(given, str):
                options[key] = change(where, given)  # type: ignore[index]
            elif isinstance(given, list):
                options[key] = [change(where, name) for name in given]  # type: ignore[index]


def _staying_name(path: Path, where: str, name: str) -> str:
    """``name``, refused if it leaves the folder data is looked for in."""
    if not _stays_below(name):
        raise PredictError(
            f"{path}: {where} {name!r} leaves the folder data is looked for in; a bundle names "
            f"its data files relative to --data-dir (or $LABELEMB_DATA); {RE_EXPORT}"
        )
    return name


def _stays_below(name: str) -> bool:
    """Whether the relative file name ``name`` stays inside the folder it is looked for in."""
    path = PurePath(name)
    return not (path.is_absolute() or name.startswith("~") or ".." in path.parts)


def _file_options(config: RunConfig, values: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, str]]:
    """Each model or method option of a config dump that names a file (an option typed as a path),
    as (the mapping that holds it, its key, its dotted name)."""
    method = config.method.name
    places = [
        ("model", model_class(config.model.name), values["model"]),
        ("method", method_class(method), values["method"]),
        (f"methods.{method}", method_class(method), values["methods"].get(method) or {}),
    ]
    for where, cls, place in places:
        for key, value in place.items():
            if key != ENCODER_OPTION and isinstance(value, str) and _names_a_file(cls, key):
                yield place, key, f"{where}.{key}"


def _names_a_file(cls: type, key: str) -> bool:
    """Whether option ``key`` of ``cls`` is typed as a path (its own ``__init__`` or a base's)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(key)
        if parameter is not None:
            return "Path" in str(parameter.annotation)
    return False


def portable_config(config: RunConfig, folder: Path) -> tuple[dict[str, Any], list[Path]]:
    """The config a bundle in ``folder`` is written with, and the files copied into it: the files
    its options name (a run folder given as one: its label representation), named inside the
    bundle; its data files by their names alone, found in the user's data folder; no folders of
    this machine. A :class:`PredictError` for a text encoder named by its folder."""
    check_encoders(config, lambda where, name: f"cannot export {where} {name!r}: it")
    values = config.model_dump(mode="json")
    values["data"]["dir"] = None
    # Where the exporter's runs went is a folder of its machine, not the bundle's.
    values["output_dir"] = RunConfig.model_fields["output_dir"].default
    _drop_cache_folder(values)
    _map_data_names(values, _local_name)
    copied = []
    for place, key, where in list(_file_options(config, values)):
        source = Path(place[key])
        if source.is_dir():
            source = source / TENSORS_FILE
        if not source.is_file():
            raise PredictError(f"cannot export: {where} names {place[key]}, which is not a file")
        copied.append(folder / f"{where}{source.suffix}")
        shutil.copyfile(source, copied[-1])
        place[key] = copied[-1].name
    return values, copied


def _local_name(where: str, name: str) -> str:
    """A data file name that leaves its folder (absolute, ``~``, ``..``) cut to its last part."""
    return name if _stays_below(name) else PurePath(name).name
