"""The config language is one package with one door (issue 61): labelemb.config's names are the
ones the rest of the code and the documented paths (labelemb.training.build_config, ...) hand on, and
no module outside the package reaches into the modules behind that door."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers.repo_paths import SOURCE

import labelemb.config
import labelemb.training

PACKAGE = SOURCE / "config"


def dotted(path: Path) -> list[str]:
    """The dotted name of the module at ``path`` (its package's for an ``__init__.py``), as parts."""
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Every ``module`` and ``module.name`` an import in ``path`` names, made absolute, with its line."""
    package = dotted(path) if path.name == "__init__.py" else dotted(path)[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def reaches_inside(name: str) -> bool:
    """Whether the import of ``name`` reads a module of labelemb.config rather than its door."""
    inner = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    parts = name.split(".")
    return parts[:2] == ["labelemb", "config"] and len(parts) > 2 and parts[2] in inner


def test_nothing_outside_the_package_reaches_into_it():
    offenders = [
        f"{path.relative_to(SOURCE.parent)}:{line}: {name}"
        for path in sorted(SOURCE.rglob("*.py"))
        if PACKAGE not in path.parents
        for line, name in imported_names(path)
        if reaches_inside(name)
    ]
    assert not offenders, f"import these from labelemb.config itself: {offenders}"


def test_the_checker_sees_a_reach_inside():
    assert reaches_inside("labelemb.config.schema.RunConfig")
    assert reaches_inside("labelemb.config.checks")
    assert not reaches_inside("labelemb.config.RunConfig")
    assert not reaches_inside("labelemb.data.files.options.FilesOptions")


@pytest.mark.parametrize("name", ["ConfigError", "RunConfig", "build_config", "load_config"])
def test_the_documented_paths_hand_on_the_config_s_names(name):
    assert getattr(labelemb.training, name) is getattr(labelemb.config, name)


def test_the_door_holds_every_name_it_lists():
    missing = [name for name in labelemb.config.__all__ if not hasattr(labelemb.config, name)]
    assert not missing
