"""Where the disputed test labels rank among a network's least confident predictions, by hand, and
the file that names them: each mistake in it one line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from labelemb.data.registry import DataRequest
from labelemb.evaluation.disputed import read_disputed
from labelemb.metrics.noise import disputed_figures
from labelemb.predict.source import PredictError


def logits_of_confidence(confidences: list[float]) -> torch.Tensor:
    """Two-class logits whose max softmax is each of ``confidences`` (each above 0.5)."""
    return torch.tensor([[math.log(c / (1 - c)), 0.0] for c in confidences])


def test_disputed_figures_by_hand():
    # Ten rows by rising confidence: rows 3, 0, 7, 1, 9, 2, 8, 4, 6, 5 (rank 0 = least confident).
    confidences = [0.6, 0.8, 0.9, 0.55, 0.95, 0.99, 0.97, 0.7, 0.93, 0.85]
    logits = logits_of_confidence(confidences)
    figures = disputed_figures(logits, torch.tensor([3, 7, 5]))
    # Ranks: row 3 -> 0, row 7 -> 2, row 5 -> 9: percentiles 0, 20, 90.
    assert figures["median_rank"] == pytest.approx(20.0)
    # Of 10 rows, the 5 % and 1 % least confident hold rank 0 only (percentile < 5): row 3.
    assert figures["within_1"] == pytest.approx(100 / 3)
    assert figures["within_5"] == pytest.approx(100 / 3)
    # The 10 % least confident: percentile < 10, rank 0 again.
    assert figures["within_10"] == pytest.approx(100 / 3)
    # AUROC of 1 - confidence: the share of (disputed, other) pairs where the disputed row is the
    # less confident (no ties here), over the 3 x 7 pairs.
    others = [c for i, c in enumerate(confidences) if i not in (3, 7, 5)]
    wins = sum((d < o) for d in (confidences[3], confidences[7], confidences[5]) for o in others)
    assert figures["auroc"] == pytest.approx(100 * wins / 21)


def test_equal_confidences_rank_in_row_order():
    figures = disputed_figures(torch.zeros(4, 3), torch.tensor([0, 3]))
    # Ranks 0 and 3 of 4: percentiles 0 and 75, their median halfway.
    assert figures["median_rank"] == pytest.approx((0 + 75) / 2)
    assert figures["auroc"] == pytest.approx(50.0)


def request(folder) -> DataRequest:
    return DataRequest(dir=str(folder), progress=False)


def test_the_file_reads_indices_or_objects_with_an_id(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"id": 4, "label": 1}, {"id": 2}]))
    (tmp_path / "b.txt").write_text("4\n\n2\n")
    first, second = (
        read_disputed("a.json", request(tmp_path), 10),
        read_disputed("b.txt", request(tmp_path), 10),
    )
    assert first.rows.tolist() == second.rows.tolist() == [4, 2]
    assert first.digest == second.digest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "[3, 12]",
            r"row 12 is outside the test split's 10 rows \(0-9\); is the file made for another data set",
        ),
        ("[3, 3]", "row 3 is named twice"),
        ('{"id": 3}', "holds a JSON dict; give a list of row indices"),
        ('[{"label": 3}]', "entry 1 .None. is not a row index"),
        ("[1,", "line 1: not valid JSON"),
        ("[]", "names no test row"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(PredictError, match=message) as caught:
        read_disputed("d.json", request(tmp_path), 10)
    assert "\n" not in str(caught.value) and "d.json" in str(caught.value)


def test_a_missing_file_names_the_key():
    with pytest.raises(PredictError, match="disputed_test_labels file nothere.json not found"):
        read_disputed("nothere.json", DataRequest(progress=False), 10)
