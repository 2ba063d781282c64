"""Calibration of test predictions (ECE, NLL, reliability bins) against hand computations, as a
run records it, and the label-similarity heatmap's colour scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from labelemb.analysis import heatmap
from labelemb.analysis.plotting import plt
from labelemb.analysis.reliability import plot_reliability
from labelemb.data.base import as_float_images
from labelemb.metrics import CalibrationSums, measure_calibration, pooled_bins
from labelemb.tasks import Classification, Predictor
from labelemb.training import build_network, train

# Six predictions over three classes, chosen so that softmax gives exact confidences:
#  1. a three-way tie: confidence 1/3 (on the first edge of 3 bins), predicts class 0 (the first
#     of equals), right;  2.-3. a two-way tie: confidence exactly 0.5, predicts class 0: wrong for
#     label 1, right for label 0;  4. a lead of 100: confidence 1.0 in float64, right;  5. a lead of
#     1000 for the wrong class: confidence 1.0, and the label's probability e^-1000, which is 0 in
#     float64 (log(softmax) would be -inf; log_softmax gives -1000);  6. a lead of 2: confidence
#     e^2 / (e^2 + 2), about 0.787, right.
LOGITS = torch.tensor(
    [
        [0.0, 0.0, 0.0],
        [0.0, 0.0, -1000.0],
        [0.0, 0.0, -1000.0],
        [100.0, 0.0, 0.0],
        [0.0, 1000.0, 0.0],
        [2.0, 0.0, 0.0],
    ],
    dtype=torch.float64,
)
LABELS = torch.tensor([0, 1, 0, 0, 0, 0])
C6 = math.exp(2) / (math.exp(2) + 2)
NLL = (
    math.log(3)  # 1: p = 1/3
    + 2 * math.log(2)  # 2, 3: p = 1/2
    + math.log1p(2 * math.exp(-100))  # 4: p = 1 / (1 + 2 e^-100)
    + 1000.0  # 5: p = e^-1000 / (1 + 2 e^-1000)
    + math.log1p(2 * math.exp(-2))  # 6: p = C6
) / 6


def test_ece_and_nll_by_hand_over_three_bins():
    result = measure_calibration(LOGITS, LABELS, bins=3)
    # Bins (0, 1/3], (1/3, 2/3], (2/3, 1]: 1/3 falls in the first, 0.5 in the second, 1.0 and C6
    # in the last.
    assert result.counts == [1, 2, 3]
    assert result.accuracy == pytest.approx([1.0, 0.5, 2 / 3])
    assert result.confidence == pytest.approx([1 / 3, 0.5, (2 + C6) / 3])
    # ECE = 1/6 |1 - 1/3| + 2/6 |0.5 - 0.5| + 3/6 |2/3 - (2 + C6)/3|, in percent.
    assert result.ece == pytest.approx(100 * (1 / 6 * (2 / 3) + 0 + 3 / 6 * (C6 / 3)), rel=1e-12)
    assert result.nll == pytest.approx(NLL, rel=1e-12)
    assert math.isfinite(result.nll)


def test_empty_bins_and_an_edge_that_is_exact_over_four_bins():
    result = measure_calibration(LOGITS, LABELS, bins=4)
    # Bins (0, .25], (.25, .5], (.5, .75], (.75, 1]: 1/3 and the two 0.5s (on the edge) in the
    # second, C6 and the two 1.0s in the last; the first and third are empty.
    assert result.counts == [0, 3, 0, 3]
    assert result.accuracy[0] is None and result.accuracy[2] is None
    assert result.confidence[0] is None and result.confidence[2] is None
    assert result.accuracy[1] == pytest.approx(2 / 3) and result.accuracy[3] == pytest.approx(2 / 3)
    assert result.confidence[1] == pytest.approx((1 / 3 + 0.5 + 0.5) / 3)
    # Empty bins contribute nothing: 3/6 |2/3 - 4/9| + 3/6 |2/3 - (2 + C6)/3|.
    want = 3 / 6 * abs(2 / 3 - 4 / 9) + 3 / 6 * abs(2 / 3 - (2 + C6) / 3)
    assert result.ece == pytest.approx(100 * want, rel=1e-12)
    assert result.nll == pytest.approx(NLL, rel=1e-12)  # the bins do not change the likelihood


def test_one_bin_is_the_gap_between_accuracy_and_mean_confidence():
    result = measure_calibration(LOGITS, LABELS, bins=1)
    confidence = (1 / 3 + 0.5 + 0.5 + 1 + 1 + C6) / 6
    assert result.counts == [6] and result.accuracy == [pytest.approx(4 / 6)]
    assert result.ece == pytest.approx(100 * abs(4 / 6 - confidence), rel=1e-12)


def test_fifteen_bins_match_a_plain_loop_over_the_bins():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(500, 7, generator=generator)
    labels = torch.randint(0, 7, (500,), generator=generator)
    result = measure_calibration(logits, labels)
    probabilities = torch.softmax(logits.double(), -1).numpy()
    confidence, right = probabilities.max(1), probabilities.argmax(1) == labels.numpy()
    ece, counts = 0.0, []
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        counts.append(int(inside.sum()))
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - confidence[inside].mean())
    assert result.counts == counts and sum(counts) == 500
    assert result.ece == pytest.approx(100 * ece, rel=1e-9)
    nll = -np.log(probabilities[np.arange(500), labels.numpy()]).mean()
    assert result.nll == pytest.approx(nll, rel=1e-9)


def test_batch_by_batch_and_pooled_bins_equal_all_at_once():
    generator = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(300, 10, generator=generator)
    labels = torch.randint(0, 10, (300,), generator=generator)
    whole = measure_calibration(logits, labels)
    sums = CalibrationSums()
    for chunk, chunk_labels in zip(logits.split(64), labels.split(64)):
        sums.add(chunk.float(), chunk_labels)
    batched = sums.result()
    assert batched.counts == whole.counts
    assert batched.ece == pytest.approx(whole.ece, rel=1e-6) and batched.nll == pytest.approx(whole.nll)
    # Pooling the bins of two halves gives the bins (and ECE) of all the predictions.
    halves = [measure_calibration(logits[i : i + 150], labels[i : i + 150]) for i in (0, 150)]
    pooled = pooled_bins([half.reliability() for half in halves])
    assert pooled.counts == whole.counts
    assert pooled.ece == pytest.approx(whole.ece, rel=1e-9)
    filled = [i for i, count in enumerate(whole.counts) if count]
    assert [pooled.accuracy[i] for i in filled] == pytest.approx([whole.accuracy[i] for i in filled])
    assert [pooled.confidence[i] for i in filled] == pytest.approx([whole.confidence[i] for i in filled])


def test_a_short_run_records_the_calibration_of_its_test_predictions(small_config, digits, one_thread):
    config = small_config("train.eval_every=600")
    summary = train(config, dataset=digits)
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert all({"test_ece", "test_nll", "test_calibration"} <= set(r) for r in records)
    selected = next(r for r in records if r["step"] == summary["selected_step"])
    assert summary["selected_test_ece"] == selected["test_ece"]
    assert summary["selected_test_nll"] == selected["test_nll"]
    assert summary["selected_test_calibration"] == selected["test_calibration"]
    assert sum(summary["selected_test_calibration"]["counts"]) == len(digits.test)
    # The last check is the saved model's: its figures are those of its test predictions.
    model, method = build_network(config, digits)
    network = torch.nn.ModuleDict({"model": model, "method": method})
    network.load_state_dict(torch.load(config.run_dir() / "model.pt", weights_only=True))
    with torch.no_grad():
        logits = Predictor(network, model, method)(as_float_images(digits.test.inputs))
    want = measure_calibration(logits, digits.test.labels)
    assert records[-1]["test_ece"] == pytest.approx(want.ece, rel=1e-5, abs=1e-6)
    assert records[-1]["test_nll"] == pytest.approx(want.nll, rel=1e-5)
    assert records[-1]["test_calibration"]["counts"] == want.counts
    assert 0 < records[-1]["test_ece"] < 100


def test_the_summary_keeps_none_for_a_selected_check_recorded_without_calibration(small_config, digits):
    from labelemb.assembly.plan import plan_run
    from labelemb.training import Progress
    from labelemb.training.results import summarize

    # A run continued from one recorded before calibration: its selected check lacks the fields.
    records = [
        {"step": 3, "epoch": 0.25, "examples": 300, "dev_error": 5.0, "test_error": 6.0},
        {"step": 6, "epoch": 0.5, "examples": 600, "dev_error": 7.0, "test_error": 8.0, "test_ece": 1.0},
    ]
    progress = Progress(epoch=1, step=6, examples=600, train_seconds=1.0, wall_seconds=1.0, records=records)
    summary = summarize(plan_run(small_config()), progress, digits, Classification(), torch.device("cpu"), 1)
    assert summary["selected_step"] == 3
    assert summary["selected_test_ece"] is None and summary["selected_test_calibration"] is None


def test_reliability_diagram_is_drawn_only_for_runs_that_recorded_calibration(tmp_path):
    from labelemb.analysis.compare import Run

    bins = measure_calibration(LOGITS, LABELS).reliability()
    runs = {
        "onehot": [Run("onehot", s, {"selected_test_calibration": bins}, []) for s in (0, 1)],
        "old": [Run("old", 0, {}, [])],
    }
    path = plot_reliability(runs, tmp_path / "reliability.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert plot_reliability({"old": runs["old"]}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


# ------------------------------------------------------------------------------ the heatmap


SIMILARITY = torch.tensor(
    [
        [0.40, 0.10, 0.06, 0.44],
        [0.08, 0.30, 0.12, 0.50],
        [0.07, 0.09, 0.32, 0.52],
        [0.11, 0.07, 0.10, 0.72],
    ]
)


def test_the_heatmap_colours_span_the_off_diagonal_and_mask_the_diagonal(tmp_path, monkeypatch):
    drawn = []

    def keep(fig, path):
        drawn.append(fig)
        return tmp_path / "kept.png"

    monkeypatch.setattr(heatmap, "save_figure", keep)
    heatmap.plot_similarity_heatmap(SIMILARITY, ["a", "b", "c", "d"], tmp_path / "h.png", title="t")
    (fig,) = drawn
    (image,) = fig.axes[0].images
    # The off-diagonal entries run from 0.06 to 0.52; the diagonal (0.30-0.72) is not on the scale.
    assert image.get_clim() == pytest.approx((0.06, 0.52))
    data = image.get_array()
    assert data.mask.tolist() == np.eye(4, dtype=bool).tolist()
    assert np.diagonal(data.data) == pytest.approx([0.40, 0.30, 0.32, 0.72])
    # The diagonal's values are written in its cells, and the colour bar says what it shows.
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.30", "0.32", "0.40", "0.72"]
    label = fig.axes[1].get_ylabel()
    assert "off-diagonal" in label and "0.30-0.72" in label
    plt.close(fig)


def test_the_heatmap_file_is_written_and_degenerate_matrices_keep_a_colour_scale(tmp_path):
    path = heatmap.plot_similarity_heatmap(SIMILARITY, ["a", "b", "c", "d"], tmp_path / "h.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert heatmap.colour_limits(torch.tensor([[0.9]])) == pytest.approx((0.9, 0.9), abs=1e-5)
    low, high = heatmap.colour_limits(torch.full((3, 3), 0.2))
    assert low == pytest.approx(0.2) and high > low
