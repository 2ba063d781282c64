"""Adding a figure is one declaration and one function (docs/extending.md): a figure declared with
its function is computed by ``labelemb evaluate``'s test figures and shown as a column of the
beyond-error table, in the table's unit; and a run folder written before reads as it always did."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import torch

from labelemb.analysis.beyond_error import beyond_error_statistics, beyond_error_tables
from labelemb.analysis.compare import welch_p
from labelemb.evaluation.run import _test_figures
from labelemb.metrics.figures import DECLARED, Figure, computed_figures, declare
from labelemb.rundir import EVALUATION_FILE, RunDir


def top2_error(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share (%) of examples whose label is not among the two highest logits."""
    missed = (logits.topk(2, dim=-1).indices != labels[:, None]).all(dim=-1)
    return 100.0 * float(missed.double().mean())


def test_a_declared_figure_is_computed_and_gets_a_column(monkeypatch):
    monkeypatch.setattr("labelemb.metrics.figures.DECLARED", dict(DECLARED))  # undone after the test
    declare(Figure("top2_error", "error", "top-2 error %", unit="percent", compute=top2_error))

    logits, labels = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([1, 0])
    assert computed_figures(logits, labels) == {"top2_error": 50.0}
    # What `labelemb evaluate` records of a run's test split (a run without a dev split here).
    scores = SimpleNamespace(
        predictor=SimpleNamespace(temperature=None), dev=None, test=SimpleNamespace(labels=labels)
    )
    assert _test_figures(scores, logits, None)["top2_error"] == 50.0

    evaluations = [{"test": {"selective_msp_aurc": 2.0, "top2_error": share}} for share in (1.0, 3.0)]
    row = beyond_error_statistics(evaluations, None, welch_p, [])
    rows = [{"method": "onehot", "selected_mean": 5.0, "selected_std": 0.5, **row}]
    table = beyond_error_tables(rows, "onehot", [])
    assert "| top-2 error % |" in table.splitlines()[2]
    assert table.splitlines()[4].endswith("| 2.00 ± 1.41 |")  # percent stored, percent shown


def test_an_evaluation_written_before_reads_as_it_did(tmp_path):
    # evaluation.json as runs wrote it before format 3 (shares as fractions): the same cells.
    (tmp_path / EVALUATION_FILE).write_text(
        json.dumps({"test": {"selective_msp_aurc": 0.0125, "conformal_aps_set_size": 2.5}})
    )
    old = RunDir(tmp_path).read_evaluation()
    row = beyond_error_statistics([old, old], None, welch_p, [])
    assert row["beyond_aurc_mean"] == 100.0 * 0.0125 and row["beyond_aps_size_mean"] == 2.5
    assert "top2_error" not in DECLARED and "beyond_top2_error_mean" not in row


def test_the_page_s_figure_declares_as_shown(monkeypatch):
    from helpers.repo_paths import ROOT

    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    section = page[page.index("## A figure") :].split("\n## ")[0]
    (code,) = re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    monkeypatch.setattr("labelemb.metrics.figures.DECLARED", dict(DECLARED))
    exec(compile(code, "docs/extending.md", "exec"), {})
    logits, labels = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([1, 0])
    assert computed_figures(logits, labels) == {"top2_error": 50.0}  # in percent
