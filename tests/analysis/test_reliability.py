"""The reliability diagrams of a comparison (the report's analysis/reliability.png), issue 99: their
legend covered the first method's bars, and a method of one seed was titled "1 seeds pooled". Read
from the figure's artists and the layout matplotlib's renderer gives them, never from pixels."""

from __future__ import annotations

import pytest
import torch
from helpers.report_checks import drawn_reliability_figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import Rectangle

from labelemb.analysis.compare import Run
from labelemb.metrics import measure_calibration

CLASSES = 10


def underconfident_run(method: str, seed: int, margin: float = 1.0, scaled: bool = True) -> Run:
    """A run whose every prediction is right at a confidence near 0.23 (the right class ``margin``
    above nine others): its accuracy bar reaches the top of the diagram at the left, where a legend
    in the upper left corner lay."""
    labels = torch.arange(40) % CLASSES
    logits = torch.zeros(40, CLASSES)
    logits[torch.arange(40), labels] = margin
    summary = {"selected_test_calibration": measure_calibration(logits, labels).reliability()}
    if scaled:
        temperature = 0.5
        summary["selected_test_calibration_scaled"] = measure_calibration(
            logits / temperature, labels
        ).reliability()
        summary["selected_temperature"] = temperature
    return Run(method, seed, summary, [])


def drawn_figure(monkeypatch: pytest.MonkeyPatch, runs: dict, tmp_path):
    """The figure plot_reliability lays out and writes."""
    return drawn_reliability_figure(monkeypatch, runs, tmp_path / "reliability.png")


@pytest.mark.parametrize("scaled", [True, False])
def test_the_legend_covers_no_bar_and_lies_within_the_figure(monkeypatch, tmp_path, scaled):
    runs = {
        "onehot": [underconfident_run("onehot", 0, scaled=scaled)],
        "label_embedding": [underconfident_run("label_embedding", s, 1.5, scaled) for s in (0, 1)],
    }
    fig = drawn_figure(monkeypatch, runs, tmp_path)
    renderer = FigureCanvasAgg(fig).get_renderer()  # pyplot gave the written figure a bare canvas
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    box = legend.get_window_extent(renderer)
    assert fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1)
    assert {t.get_text() for t in legend.get_texts()} == {
        "accuracy",
        "gap to mean confidence",
        "mean confidence",
        "perfect calibration",
    }
    bars = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    tall = [p for p in bars if p.get_height() == pytest.approx(1.0)]
    assert tall  # the accuracy bars at the left reach the top, where the legend lay
    for bar in bars:
        assert not box.overlaps(bar.get_window_extent(renderer)), bar


def test_a_title_says_one_seed_or_how_many_seeds_were_pooled(monkeypatch, tmp_path):
    runs = {
        "onehot": [underconfident_run("onehot", 0)],
        "label_embedding": [underconfident_run("label_embedding", s) for s in (0, 1)],
        "lwr": [underconfident_run("lwr", 0), Run("lwr", 1, {}, [])],  # one seed from before
    }
    fig = drawn_figure(monkeypatch, runs, tmp_path)
    titles = {ax.get_title().splitlines()[0]: ax.get_title() for ax in fig.axes if ax.get_title()}
    assert titles["onehot, raw"].endswith("(1 seed)")
    assert titles["label_embedding, raw"].endswith("(2 seeds pooled)")
    assert titles["lwr, raw"].endswith("(1 of 2 seeds)")
    assert not any("1 seeds" in title for title in titles.values())
