"""The similarity heatmap's colour bar: every tick labelled in full, so that no shared multiplier
(``1e-5`` above the bar) runs into the title, as it did on a trained onehot's heatmap."""

from __future__ import annotations

import pytest
import torch

from labelemb.analysis import heatmap
from labelemb.analysis.plotting import plt


def onehot_like(classes: int) -> torch.Tensor:
    """A trained onehot's mean softmax: about 1 on the diagonal, 1e-6 to 4e-5 off it."""
    generator = torch.Generator().manual_seed(0)
    similarity = torch.rand(classes, classes, generator=generator) * 4e-5 + 1e-6
    return similarity.fill_diagonal_(0.9996)


@pytest.mark.parametrize("classes", [3, 10])
def test_the_colour_bar_has_no_offset_text_and_nothing_of_it_meets_the_title(tmp_path, monkeypatch, classes):
    drawn = []

    def laid_out(fig, path):  # what save_figure does before writing, without closing the figure
        fig.tight_layout()
        drawn.append(fig)
        return path

    monkeypatch.setattr(heatmap, "save_figure", laid_out)
    names = [f"class {i}" for i in range(classes)]
    heatmap.plot_similarity_heatmap(
        onehot_like(classes), names, tmp_path / "h.png", "onehot seed 0 (mean softmax on dev)"
    )
    (fig,) = drawn
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes, bar = fig.axes
    title = axes.title.get_window_extent(renderer)
    offset = bar.yaxis.get_offset_text()
    assert offset.get_text() == ""
    texts = [offset, *bar.get_yticklabels(), bar.yaxis.label]
    assert not [t.get_text() for t in texts if t.get_text() and t.get_window_extent(renderer).overlaps(title)]
    # Each tick says its own value, exponent and all.
    ticks = bar.get_yticks()
    labels = [label.get_text() for label in bar.get_yticklabels()]
    assert len(ticks) >= 3 and any("e-5" in label for label in labels), labels
    spacing = min(b - a for a, b in zip(ticks, ticks[1:]))
    assert [float(label) for label in labels] == pytest.approx(list(ticks), abs=spacing * 1e-3)
    plt.close(fig)


def test_tick_labels_take_the_digits_the_spacing_needs():
    assert heatmap.tick_labels([0.094, 0.096, 0.098, 0.1, 0.102, 0.104]) == [
        "0.094",
        "0.096",
        "0.098",
        "0.100",
        "0.102",
        "0.104",
    ]
    assert heatmap.tick_labels([0.0, 5e-6, 1e-5, 1.5e-5]) == ["0", "5e-6", "1e-5", "1.5e-5"]
    assert heatmap.tick_labels([0.1, 0.2, 0.30000000000000004]) == ["0.1", "0.2", "0.3"]
    assert heatmap.tick_labels([0.2000002, 0.2000004]) == ["0.2000002", "0.2000004"]  # a constant matrix
    assert heatmap.tick_labels([0.0, 100.0, 200.0]) == ["0", "100", "200"]
    assert heatmap.tick_labels([]) == []
