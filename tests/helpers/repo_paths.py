"""The repository's folders, for the tests that read its files (configs, docs, examples, sources).

The tests sit in one folder per package (tests/methods/, tests/docs/, ...), so a test file's own
location is not the root; import these instead (``from helpers.repo_paths import ROOT``), like browser.py.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root: the folder holding pyproject.toml, src/, tests/.
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
SOURCE = ROOT / "src" / "labelemb"
