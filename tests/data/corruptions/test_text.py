"""Text perturbations (labelemb.data.corruptions.text): character noise and word dropout."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from scipy.stats import binom

from labelemb.data.corruptions import CORRUPTIONS, Corruption, corrupt, corruption, perturb_texts
from labelemb.data.corruptions.text import char_noise, word_dropout
from labelemb.registry import Entry

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing whitespace\tand a tab  ",
    "line one\nline two\n\nline four",
    "digits 12345 and symbols #@! stay",
    "x",
]
UNICODE = "naïve café — 東京タワー 😀 Ünïcödé straße"
# Binomial bounds this wide fail a correct implementation about once in a million runs.
COVERAGE = 1 - 1e-6


class FixedDraws:
    """Stands for a numpy Generator whose every draw is fixed: each character hit (uniform 0), with
    the given edit (0 swap, 1 drop, 2 insert) and inserted letter index."""

    def __init__(self, edit: int, letter: int = 0) -> None:
        self.edit, self.letter = edit, letter

    def random(self, size: int) -> np.ndarray:
        return np.zeros(size)

    def integers(self, high: int, size: int) -> np.ndarray:
        return np.full(size, self.edit if high == 3 else self.letter)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def within_binomial(count: int, trials: int, probability: float) -> bool:
    low, high = binom.interval(COVERAGE, trials, probability)
    return low <= count <= high


@pytest.mark.parametrize("transform", [char_noise, word_dropout])
def test_rate_zero_changes_nothing(transform) -> None:
    for text in [*TEXTS, UNICODE]:
        assert transform(text, 0.0, rng()) == text


@pytest.mark.parametrize("name", ["char_noise", "word_dropout"])
def test_the_empty_string_stays_empty_at_every_severity(name: str) -> None:
    for severity in corruption(name).severities():
        assert perturb_texts(["", "   "], name, severity) == ["", "   "]
    assert corruption(name).transform("", 1.0, rng()) == ""


def test_char_noise_swaps_a_character_with_its_right_neighbour_within_a_word() -> None:
    # a swapped neighbour is not considered again; a word's last character has no one to swap with
    assert char_noise("abcd abc a", 1.0, FixedDraws(edit=0)) == "badc bac a"


def test_char_noise_drops_and_inserts_only_letters_and_digits() -> None:
    assert char_noise("a1, b-c!", 1.0, FixedDraws(edit=1)) == ", -!"
    assert char_noise("a1 b", 1.0, FixedDraws(edit=2, letter=25)) == "az1z bz"


def test_char_noise_rate_of_each_edit_is_a_third_of_the_rate() -> None:
    rate = corruption("char_noise").level(5)
    # one-letter words: a hit is a drop (an A missing) or an insertion (a lowercase letter); a swap
    # has no neighbour within the word, so it changes nothing
    letters = perturb_texts([" ".join("A" * 500)] * 200, "char_noise", 5, seed=3)
    trials = 500 * 200
    dropped = sum(500 - text.count("A") for text in letters)
    inserted = sum(sum(c in string.ascii_lowercase for c in text) for text in letters)
    assert within_binomial(dropped, trials, rate / 3)
    assert within_binomial(inserted, trials, rate / 3)
    # two-letter words: "BA" appears only where the A was swapped with its right neighbour
    pairs = perturb_texts([" ".join(["AB"] * 500)] * 200, "char_noise", 5, seed=3)
    swapped = sum(text.count("BA") for text in pairs)
    assert within_binomial(swapped, trials, rate / 3)


def test_word_dropout_rate_is_the_share_of_words_dropped() -> None:
    rate = corruption("word_dropout").level(3)
    text = " ".join(f"w{i}" for i in range(20))
    dropped = sum(20 - len(out.split()) for out in perturb_texts([text] * 10000, "word_dropout", 3, seed=5))
    assert within_binomial(dropped, 20 * 10000, rate)


def test_word_dropout_at_rate_one_keeps_one_word_chosen_at_random() -> None:
    text = "alpha beta gamma delta epsilon"
    kept = [word_dropout(text, 1.0, rng(seed)) for seed in range(200)]
    assert all(out in text.split() for out in kept)
    assert set(kept) == set(text.split())  # not always the first one


def test_word_dropout_keeps_the_texts_whitespace_around_kept_words() -> None:
    out = word_dropout("  one two\nthree\tfour  ", 0.5, rng(1))
    words = out.split()
    assert words and set(words) <= {"one", "two", "three", "four"}
    assert out.startswith("  ") and out.endswith("  ")
    assert word_dropout("  one two\nthree\tfour  ", 0.0, rng(1)) == "  one two\nthree\tfour  "


def test_perturbing_is_deterministic_and_per_example() -> None:
    for name in ("char_noise", "word_dropout"):
        first = perturb_texts(TEXTS, name, 5, seed=7)
        assert first == perturb_texts(TEXTS, name, 5, seed=7)
        assert "".join(first).encode() == "".join(perturb_texts(TEXTS, name, 5, seed=7)).encode()
        assert first != perturb_texts(TEXTS, name, 5, seed=8)
        # a text's result depends on its position and the seed, not on the other texts
        others = ["something else entirely", *TEXTS[1:3], "another one", TEXTS[4]]
        changed = perturb_texts(others, name, 5, seed=7)
        assert [changed[i] for i in (1, 2, 4)] == [first[i] for i in (1, 2, 4)]
        assert perturb_texts(TEXTS[:2], name, 5, seed=7) == first[:2]


def test_unicode_text_survives() -> None:
    for seed in range(20):
        noisy = char_noise(UNICODE, 1.0, rng(seed))
        noisy.encode("utf-8")  # no broken code points
        assert [c for c in noisy if not c.isalnum()] == [c for c in UNICODE if not c.isalnum()]
        assert set(noisy) <= set(UNICODE) | set(string.ascii_lowercase)
        dropped = word_dropout(UNICODE, 0.5, rng(seed))
        assert dropped.split() and set(dropped.split()) <= set(UNICODE.split())


def test_the_text_corruptions_are_registered_as_five_step_scales() -> None:
    for name in ("char_noise", "word_dropout"):
        chosen = corruption(name)
        assert chosen.reads == "texts" and chosen.scaled and chosen.severities() == (1, 2, 3, 4, 5)
        assert list(chosen.levels) == sorted(chosen.levels) and chosen.default_severity() == 3


def test_perturb_texts_refuses_an_image_corruption_in_one_line(monkeypatch) -> None:
    name = "image_probe_for_test_text"
    probe = Corruption(name, lambda image, level, rng: image, (0.5,), "a test's stand-in")
    monkeypatch.setitem(CORRUPTIONS._entries, name, Entry(name, probe))
    with pytest.raises(ValueError, match="applies to images, not to texts") as raised:
        perturb_texts(["some text"], name)
    assert "\n" not in str(raised.value)


def test_corrupt_refuses_a_text_corruption_in_one_line() -> None:
    with pytest.raises(ValueError, match="'char_noise' applies to texts, not to images") as raised:
        corrupt(torch.zeros(1, 1, 4, 4), "char_noise")
    assert "\n" not in str(raised.value)
