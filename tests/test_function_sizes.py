"""The project's limit on a function's length (issue 71): no function or method under src/labelemb/
is over 80 lines (its decorators, signature, docstring and body), so that a function holds one
idea a reader can take in; one that grows past it is split along its seam."""

from __future__ import annotations

import ast

from helpers.repo_paths import SOURCE

#: The most lines a function may have.
MAX_FUNCTION_LINES = 80


def function_lengths() -> dict[str, int]:
    """Every function under src/labelemb (nested ones and methods too), ``path:line name`` -> lines."""
    lengths = {}
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lengths[f"{path.relative_to(SOURCE)}:{node.lineno} {node.name}"] = node.end_lineno - first + 1
    return lengths


def test_every_function_is_at_most_the_limit():
    long = {name: lines for name, lines in function_lengths().items() if lines > MAX_FUNCTION_LINES}
    assert not long, f"split these along a seam, each at most {MAX_FUNCTION_LINES} lines: {long}"


def test_the_measure_counts_decorators_signature_and_body():
    lengths = function_lengths()
    assert lengths, "no function found under src/labelemb"
    assert all(lines >= 1 for lines in lengths.values())
