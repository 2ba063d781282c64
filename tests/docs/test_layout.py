"""docs/layout.md is the map of the code: every module under src/labelemb/ is named in its
package's paragraph, and every file the page names exists where it says (issue 45). The tests share
helpers through helper modules, never through another test file (issue 56)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers.repo_paths import ROOT, SOURCE

#: Files every package has, that say nothing of its own.
UNNAMED = {"__init__.py", "__main__.py"}


def layout_entries() -> dict[str, str]:
    """The page's tree, one entry per top-level name (``methods/``, ``rundir/``, ``registry.py``,
    ``bench/``): its text, continuation lines included."""
    page = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    block = page.split("```", 2)[1]
    entries: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        head = re.match(r"^(?:src/labelemb/|  )?(\S+)(?:\s|$)", line) if not line.startswith("    ") else None
        if head and (line.startswith("  ") or not line.startswith(" ")):
            name = head.group(1).rstrip(":")
            entries[name] = line
        elif name is not None:
            entries[name] += "\n" + line
    return entries


def test_every_module_is_named_in_its_package_s_paragraph():
    entries = layout_entries()
    missing = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name in UNNAMED:
            continue
        parts = path.relative_to(SOURCE).parts
        top = parts[0] if len(parts) == 1 else f"{parts[0]}/"
        text = entries.get(top, "")
        # A module of a sub-package is named after the sub-package's own name ("files/: ... loader.py").
        start = text.find(f"{parts[1]}/") if len(parts) > 2 else 0
        if start < 0 or not re.search(rf"(?<![\w/]){re.escape(path.name)}", text[start:]):
            missing.append(str(path.relative_to(SOURCE)))
    assert not missing, f"docs/layout.md does not name these modules in their package's paragraph: {missing}"


def test_every_file_the_page_names_exists():
    entries = layout_entries()
    absent = []
    for top, text in entries.items():
        folder = ROOT / top if top in {"configs/", "bench/", "docs/", "examples/", "tests/"} else SOURCE / top
        for named in re.findall(r"(?<![\w./])((?:\.\./)?[\w/]*\w+\.py)\b", text):
            if named.startswith("../"):
                found = (folder / named).resolve().exists()
            elif top.endswith("/"):
                found = any(folder.rglob(Path(named).name)) and (
                    "/" not in named or any(p.as_posix().endswith(named) for p in folder.rglob("*.py"))
                )
            else:
                found = (SOURCE / named).exists()
            if not found:
                absent.append(f"{top}: {named}")
    assert not absent, f"docs/layout.md names files that do not exist: {absent}"


def test_the_page_says_where_the_equation_lives():
    text = layout_entries()["methods/"]
    assert "label_embedding/" in text and "loss.py (the equation in code, Eq. 6-14" in text
    assert (SOURCE / "methods" / "label_embedding" / "loss.py").exists()


def imports_of_tests(tree: ast.Module) -> list[ast.stmt]:
    """The imports that name a test module, or a test itself: a dotted part of the module, or a name
    imported from it, starting with ``test_``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            parts = [part for alias in node.names for part in alias.name.split(".")]
        elif isinstance(node, ast.ImportFrom):
            parts = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
        else:
            continue
        if any(part.startswith("test_") for part in parts):
            found.append(node)
    return found


def test_no_test_file_imports_another():
    """A helper that tests share lives in a helper module at tests/helpers/ (run_checks.py, ...): a test file
    imported by another needs its folder on the path, and what it holds runs in two files."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for node in imports_of_tests(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    ]
    assert not offenders, f"move what these import into a helper module at tests/helpers/: {offenders}"
