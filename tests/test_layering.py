"""The floors of docs/layout.md held by a test (issue 61): every import under src/labelemb/, at a
module's top and inside its functions, relative or absolute, reads down the floors; methods, data
and models import none of each other; integrations imports methods only; and no module reaches
itself through its imports (lazy imports included), so that a change cannot break them silently."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from helpers.repo_paths import SOURCE

#: The ground floor, from the bottom up: each module or package imports only those before it
#: (metrics first: a leaf that imports nothing of labelemb's).
GROUND = (
    "metrics",
    "version",
    "arguments",
    "demo_config",
    "registry",
    "options",
    "hub",
    "stacking",
    "aligned",
    "progress",
    "search_spaces",
    "rundir",
    "callbacks",
    "steps",
)

#: The floors above the ground, from the bottom up: a package imports the floors below its own.
FLOORS = (
    {"methods", "data", "models"},
    {"tasks", "integrations"},
    {"config"},
    {"assembly"},  # config -> plan -> network, method, data, schedule (issue 71)
    {"training"},
    {"tracking", "sweep"},
    {"tuning"},
    {"analysis", "predict"},
    {"evaluation"},  # a finished run judged from its selected weights (issue 80)
    {"experiment"},  # the whole experiment in Python: what each command does (issue 80)
    {"label_issues"},  # which training rows are wrong: cross-fitted runs read by cleanlab (issue 101)
    {"cli"},
    {"__init__", "__main__"},  # the package's own door: labelemb.load, the trackers' callback; python -m
)

#: What a package imports at most, where docs/layout.md says so (besides the ground floor).
ONLY = {"integrations": {"methods"}}

#: The packages that build through labelemb.assembly and use training only through labelemb.training's
#: door (its __init__), never a module behind it (issue 71).
THROUGH_TRAIN_DOOR = (
    "predict",
    "evaluation",
    "tuning",
    "analysis",
    "sweep",
    "experiment",
    "label_issues",
    "cli",
)

#: Where an import inside a function is not yet held to say why.
LAZY_UNCHECKED: tuple[str, ...] = ()


@dataclass(frozen=True)
class Import:
    """One import of one labelemb module by another: where it is written and what it names."""

    source: str  # the importing module, dotted (labelemb.training.loop)
    target: str  # the module it imports (labelemb.tasks, labelemb.tasks.base)
    where: str  # file:line, the file from the package's folder (labelemb/training/loop.py:12)


def module_names(root: Path) -> dict[str, Path]:
    """Every module under the package folder ``root``, dotted (a package by its ``__init__.py``)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def absolute_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from ... import`` statement reads from, made absolute."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))


def imported_modules(node: ast.stmt, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` an import statement reaches: ``import m`` reaches ``m``; ``from m
    import n`` reaches ``m.n`` where it is a module, else ``m``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules.keys()
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = absolute_base(node, module, is_package)
    reached = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return reached & modules.keys()


def imports_of(root: Path) -> list[Import]:
    """Every import of one module of the package at ``root`` by another, wherever it is written."""
    modules = module_names(root)
    found = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        file = path.relative_to(root.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = imported_modules(node, source, is_package, modules) - {source}
            found += [Import(source, target, f"{file}:{node.lineno}") for target in sorted(targets)]
    return found


def floor_of(module: str) -> tuple[int, str]:
    """The floor of a dotted module (0 the lowest) and the name of its top package."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top in GROUND:
        return GROUND.index(top), top
    for number, packages in enumerate(FLOORS, start=len(GROUND)):
        if top in packages:
            return number, top
    raise AssertionError(f"{module}: docs/layout.md names no floor for {top}; add it to its floors and here")


def broken_rule(edge: Import) -> str | None:
    """The rule of docs/layout.md that ``edge`` breaks, in words, or None."""
    (own, source), (other, target) = floor_of(edge.source), floor_of(edge.target)
    if source == target:
        return None
    if other > own:
        return f"{source} imports {target}, a floor above its own (nothing imports a package above its own)"
    if other == own:
        return f"{source} imports {target}, beside it on its floor (side by side, neither imports the other)"
    if source in ONLY and target not in ONLY[source] and target not in GROUND:
        return f"{source} imports {target} (it sits above {', '.join(sorted(ONLY[source]))} only)"
    return None


def layering_problems(root: Path) -> list[str]:
    """Each import under ``root`` that breaks a floor rule, as ``file:line: import: rule``."""
    return [
        f"{edge.where}: {edge.source} -> {edge.target}: {rule}"
        for edge in imports_of(root)
        if (rule := broken_rule(edge)) is not None
    ]


def import_circles(root: Path) -> list[str]:
    """Each import circle under ``root`` (lazy imports included), as its imports ``file:line`` in order."""
    edges: dict[str, list[Import]] = {}
    for edge in imports_of(root):
        edges.setdefault(edge.source, []).append(edge)
    circles, done = [], set()

    def visit(module: str, trail: list[Import]) -> None:
        for edge in edges.get(module, []):
            on_trail = [step.source for step in trail]
            if edge.target in on_trail:
                circle = trail[on_trail.index(edge.target) :] + [edge]
                steps = " -> ".join(f"{step.source} ({step.where})" for step in circle)
                circles.append(f"{steps} -> {edge.target}")
            elif edge.target not in done:
                visit(edge.target, trail + [edge])
        done.add(module)

    for module in sorted(edges):
        if module not in done:
            visit(module, [])
    return circles


def test_every_import_reads_down_the_floors():
    seen = {(edge.source, edge.target) for edge in imports_of(SOURCE)}
    # labelemb.load's and the trackers' imports sit inside functions: the walk reads those too.
    assert {("labelemb", "labelemb.predict"), ("labelemb", "labelemb.tracking")} <= seen
    problems = layering_problems(SOURCE)
    assert not problems, "imports that break docs/layout.md's floors:\n" + "\n".join(problems)


def test_no_import_circle():
    circles = import_circles(SOURCE)
    assert not circles, "import circles (docs/layout.md: there is no import circle):\n" + "\n".join(circles)


def test_every_package_has_its_floor():
    packages = {path.name for path in SOURCE.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    modules = {path.stem for path in SOURCE.glob("*.py")}
    named = set(GROUND).union(*FLOORS)
    assert packages | modules <= named, f"docs/layout.md names no floor for {(packages | modules) - named}"


def train_internals_used_above(root: Path) -> list[str]:
    """Each import by predict/, tuning/, analysis/, sweep/ or cli/ of a module behind
    labelemb.training's door."""
    return [
        f"{edge.where}: {edge.source} -> {edge.target}"
        for edge in imports_of(root)
        if floor_of(edge.source)[1] in THROUGH_TRAIN_DOOR and edge.target.startswith("labelemb.training.")
    ]


def unexplained_lazy_imports(root: Path) -> list[str]:
    """Each import written inside a function under ``root`` (but LAZY_UNCHECKED) whose line, or the
    line above it, does not say why with a ``# lazy: ...`` comment, as ``file:line``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in LAZY_UNCHECKED:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        tree = ast.parse("\n".join(lines), str(path))
        functions = [
            node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        lazy = {
            node.lineno
            for function in functions
            for node in ast.walk(function)
            if isinstance(node, (ast.Import, ast.ImportFrom))
        }
        for number in sorted(lazy):
            said = "# lazy:" in lines[number - 1] or lines[number - 2].strip().startswith("# lazy:")
            if not said:
                found.append(f"{path.relative_to(root.parent).as_posix()}:{number}")
    return found


def test_the_packages_above_train_use_its_door_only():
    used = train_internals_used_above(SOURCE)
    assert not used, (
        "imports of train's internals (build with labelemb.assembly; train through labelemb.training):\n"
        + ("\n".join(used))
    )


def test_every_import_inside_a_function_says_why():
    # An import at a module's top is the rule; one inside a function stays only for an optional
    # extra, a command's module loaded when that command runs, or a heavy library one function needs.
    unexplained = unexplained_lazy_imports(SOURCE)
    assert not unexplained, "imports inside functions without a '# lazy: why' comment:\n" + "\n".join(
        unexplained
    )


def test_the_door_and_lazy_checks_catch_their_cases(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "training/__init__.py": "from .loop import run\n",
            "training/loop.py": "def run():\n    pass\n",
            "predict/__init__.py": "from ..training import run\nfrom ..training import loop\n",
            "cli/run.py": "def go():\n    from ..training import run  # lazy: loaded when this command runs\n"
            "    # lazy: the ray extra\n    import ray\n    import json\n",
        },
    )
    assert train_internals_used_above(package) == [
        "labelemb/predict/__init__.py:2: labelemb.predict -> labelemb.training.loop"
    ]
    assert unexplained_lazy_imports(package) == ["labelemb/cli/run.py:5"]


def write_package(root: Path, files: dict[str, str]) -> Path:
    """A package ``labelemb`` under ``root`` holding ``files`` (relative path -> text)."""
    for name, text in files.items():
        path = root / "labelemb" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "labelemb"


def test_the_checker_catches_each_broken_rule(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "metrics/__init__.py": "from ..registry import Registry\n",
            "methods/__init__.py": "import labelemb.models\n",
            "models/__init__.py": "",
            "integrations/__init__.py": "from ..data import base\n",
            "data/base.py": "",
            "data/__init__.py": "",
            "registry.py": "",
            "training/__init__.py": "def run():\n    from ..sweep.grid import grid\n",
            "sweep/grid.py": "",
            "sweep/__init__.py": "",
        },
    )
    problems = layering_problems(package)
    assert [problem.split(": ")[0] for problem in problems] == [
        "labelemb/integrations/__init__.py:1",
        "labelemb/methods/__init__.py:1",
        "labelemb/metrics/__init__.py:1",
        "labelemb/training/__init__.py:2",
    ]
    assert (
        "labelemb.training -> labelemb.sweep.grid: training imports sweep, a floor above its own"
        in problems[3]
    )
    assert "above methods only" in problems[0] and "beside it on its floor" in problems[1]


def test_the_checker_finds_a_lazy_circle(tmp_path):
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "training/__init__.py": "",
            "training/loop.py": "from .plan import Plan\n",
            "training/plan.py": "def later():\n    from labelemb.training import loop\n",
        },
    )
    assert import_circles(package) == [
        "labelemb.training.loop (labelemb/training/loop.py:1) -> labelemb.training.plan "
        "(labelemb/training/plan.py:2) -> labelemb.training.loop"
    ]
