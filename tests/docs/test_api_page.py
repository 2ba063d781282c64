"""The Python examples of docs/api.md that run in seconds are run as written."""

from __future__ import annotations

import re

import pytest
from helpers.repo_paths import ROOT


def python_block_after(heading: str) -> str:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, f"docs/api.md: no Python example under {heading!r}"
    return match.group(1)


def test_the_runs_you_built_yourself_example_trains_three_seeds(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(python_block_after("### Runs you built yourself"), namespace)
    summaries = namespace["summaries"]
    assert [summary["seed"] for summary in summaries] == [0, 1, 2]
    assert all(0.0 <= summary["selected_test_error"] <= 100.0 for summary in summaries)
    assert all(summary["epochs_trained"] == 3 for summary in summaries)
    # The three seeds of one config stack: they trained side by side, as the text says.
    assert all(summary["batched_seeds"] == 3 for summary in summaries), summaries[0]["batched_seeds"]
