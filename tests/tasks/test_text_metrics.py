"""BLEU and ROUGE wrappers against values computed by hand on fixed strings."""

from __future__ import annotations

import math

import pytest

from labelemb.tasks.text_metrics import bleu, rouge


def test_bleu_of_a_hand_computed_sentence():
    hypothesis = "the cat sat on the mat".split()
    reference = "the cat sat on a mat".split()
    # n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    result = bleu([hypothesis], [reference])
    assert result.score == pytest.approx(expected, abs=1e-6)
    assert "tok:none" in result.signature
    assert bleu([reference], [reference]).score == pytest.approx(100.0)


def test_bleu_brevity_penalty():
    reference = "a b c d e f g h".split()
    hypothesis = "a b c d e f".split()  # every n-gram right, 6 of 8 tokens
    assert bleu([hypothesis], [reference]).score == pytest.approx(100 * math.exp(1 - 8 / 6), abs=1e-6)


def test_rouge_of_hand_computed_pairs_averaged_over_examples():
    scores = rouge([["the", "cat", "sat"], ["a", "b"]], [["the", "cat", "sat", "down"], ["b", "a"]])
    # pair 1: R1 P 3/3 R 3/4 -> 6/7; R2 2/2, 2/3 -> 0.8; L: LCS 3 -> 6/7
    # pair 2: R1 1; R2 no common bigram -> 0; L: LCS 1 of 2 -> 0.5
    assert scores["rouge1"] == pytest.approx(100 * (6 / 7 + 1) / 2)
    assert scores["rouge2"] == pytest.approx(100 * (0.8 + 0) / 2)
    assert scores["rougeL"] == pytest.approx(100 * (6 / 7 + 0.5) / 2)


def test_rouge_keeps_characters_its_own_tokeniser_would_drop():
    """rouge-score drops non-ASCII text; mapped to ASCII words, Chinese characters count."""
    scores = rouge([list("中国足球")], [list("中国篮球")])
    assert scores["rouge1"] == pytest.approx(75.0)  # 3 of 4 characters on each side
    assert scores["rouge2"] == pytest.approx(100 * 1 / 3)  # 中国 of 3 bigrams


def test_mismatched_or_empty_inputs():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu([["a"], ["b"]], [["a"]])
    with pytest.raises(ValueError, match="no hypotheses"):
        rouge([], [])
