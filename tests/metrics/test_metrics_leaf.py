"""labelemb.metrics is a leaf: its modules import torch, numpy, scipy, scikit-learn, the standard
library and each other, never another labelemb package (DESIGN.md: "metrics is a leaf that tasks
and analysis call"); the calibration figures live there (tasks/ records them)."""

from __future__ import annotations

import ast
import sys

from helpers.repo_paths import SOURCE

#: What a metrics module may import besides the standard library and its own package.
ALLOWED = {"torch", "numpy", "scipy", "sklearn"}


def outside_imports(path) -> list[str]:
    """The imports of the module at ``path`` that leave the allowed set, as ``line: statement``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .calibration import ...: the package itself
                continue
            tops = ["labelemb" if node.level else (node.module or "").split(".")[0]]
        else:
            continue
        if any(top not in ALLOWED and top not in sys.stdlib_module_names for top in tops):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_metrics_imports_no_other_labelemb_package():
    modules = sorted((SOURCE / "metrics").glob("*.py"))
    assert {"calibration.py", "temperature.py"} <= {path.name for path in modules}
    offenders = [line for path in modules for line in outside_imports(path)]
    assert not offenders, f"labelemb.metrics imports outside its leaf: {offenders}"


def test_the_checker_catches_an_import_of_another_package(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text(
        "from ..tasks import build_task\nimport labelemb.training\nimport pandas\nimport math\n"
    )
    assert [line.split(":")[1] for line in outside_imports(module)] == ["1", "2", "3"]


def test_the_calibration_figures_live_in_metrics():
    import labelemb.metrics as metrics

    for name in ("measure_calibration", "fit_temperature", "CalibrationSums", "adaptive_ece", "pooled_bins"):
        assert getattr(metrics, name).__module__.startswith("labelemb.metrics."), name
