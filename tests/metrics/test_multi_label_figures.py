"""The multi-label figures (labelemb.metrics.multi_label) on a batch worked out by hand."""

from __future__ import annotations

import pytest
import torch

from labelemb.metrics.figures import figure_of, in_units
from labelemb.metrics.multi_label import dev_threshold, tag_figures

# Three examples, three tags; tag 2 is carried by none.
SCORES = torch.tensor([[0.9, 0.2, 0.1], [0.3, 0.8, 0.1], [0.6, 0.7, 0.2]])
TAGS = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_every_figure_is_the_hand_computation():
    figures = tag_figures(SCORES, TAGS, threshold=0.5)
    expected = {
        # tag 0: both positives ranked first (AP 1); tag 1: 0.8 right, 0.7 wrong, 0.2 right
        # (AP (1 + 2/3) / 2); tag 2 carried by none has no AP and is left out of the mean.
        "map_macro": (1 + 5 / 6) / 2,
        # Decisions at 0.5: [[1,0,0],[0,1,0],[1,1,0]]: 3 right, 1 missed, 1 wrong.
        "f1_micro": 6 / 8,
        # tag 0: F1 1; tag 1: 2 * 1 / (2 + 2); tag 2 neither carried nor predicted: left out.
        "f1_macro": (1 + 0.5) / 2,
        "hamming": 2 / 9,
        "exact_match": 1 / 3,
        # Row 2's tag is ranked second (0.7 above it): precision 1/2; rows 0 and 1 rank theirs first.
        "lrap": (1 + 1 + 0.5) / 3,
        # Row 2: one of its two (carried, not carried) pairs the wrong way round.
        "ranking_loss": (0 + 0 + 0.5) / 3,
        "coverage_error": (2 + 1 + 2) / 3,
    }
    for name, value in expected.items():
        assert figures[name] == pytest.approx(value), name
    # Pairs in score order: P .9, P .8, N .7, N .6... micro AP over every (example, tag) pair.
    assert 0 < figures["map_micro"] <= 1


def test_the_dev_threshold_is_the_lowest_of_the_best_micro_f1():
    # micro-F1 is 6/8 for every threshold in (0.3, 0.6], lower below and above it (worked by hand).
    assert dev_threshold(SCORES, TAGS) == pytest.approx(0.31)
    best = tag_figures(SCORES, TAGS, dev_threshold(SCORES, TAGS))["f1_micro"]
    assert best == pytest.approx(6 / 8)
    assert all(tag_figures(SCORES, TAGS, t)["f1_micro"] <= best for t in (0.05, 0.2, 0.25, 0.65, 0.85))


def test_shares_are_recorded_in_percent_and_the_coverage_as_it_is():
    recorded = in_units({"test_map_macro": 0.5, "dev_rest_hamming": 0.25, "test_coverage_error": 1.5})
    assert recorded == {"test_map_macro": 50.0, "dev_rest_hamming": 25.0, "test_coverage_error": 1.5}
    assert figure_of("selected_test_rest_lrap").family == "multi_label"
    assert not figure_of("test_map_macro").lower_is_better


def test_mismatched_or_empty_tag_sets_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        tag_figures(SCORES, TAGS[:2], 0.5)
    with pytest.raises(ValueError, match="no example carries a tag"):
        tag_figures(SCORES, torch.zeros_like(TAGS), 0.5)
