"""Overlays (labelemb.data.corruptions.overlay): stripe, spatter, dotted line, zigzag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.image_corruption_checks import as_image, check_image_corruption, colour_images, grey_bars

from labelemb.data.corruptions import corrupt, corruption
from labelemb.data.corruptions.overlay import (
    MUD_RGB,
    dotted_line,
    frame_columns,
    spatter,
    stripe,
    zigzag,
    zigzag_vertices,
)

#: Their line's brightness one row off its centre: 1 + log(1 - 1/2.3); two rows off it is 0.
ONE_ROW_OFF = 1 + math.log(1 - 1 / 2.3)


class FixedIntegers:
    """Stands for a numpy Generator whose ``integers`` draws are the given values, in order."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def integers(self, low: int, high: int, size: int | None = None) -> int | np.ndarray:
        assert all(low <= value < high for value in self.values[: size or 1])
        if size is None:
            return self.values.pop(0)
        drawn, self.values = self.values[:size], self.values[size:]
        return np.array(drawn)


@pytest.mark.parametrize("name", ["stripe", "spatter", "dotted_line", "zigzag"])
@pytest.mark.parametrize("images", [grey_bars(), colour_images()], ids=["grey", "colour"])
def test_contract_and_determinism(name: str, images: torch.Tensor) -> None:
    out = check_image_corruption(images, name)
    assert not torch.equal(out, images)


def test_registered_settings() -> None:
    for name in ("stripe", "dotted_line", "zigzag"):
        assert corruption(name).levels == (None,) and corruption(name).mnist_c == 1
    assert corruption("spatter").mnist_c == 4 and corruption("spatter").levels[3] == (0.65, 0.3, 1, 0.65, 1.5)


def test_stripe_inverts_the_outer_quarters_at_28_and_32() -> None:
    image = as_image(grey_bars()[1])
    striped = stripe(image, None, np.random.default_rng(0))
    np.testing.assert_array_equal(striped[:, :7], 1 - image[:, :7])
    np.testing.assert_array_equal(striped[:, 21:], 1 - image[:, 21:])
    np.testing.assert_array_equal(striped[:, 7:21], image[:, 7:21])
    colour = as_image(colour_images()[0])
    striped = stripe(colour, None, np.random.default_rng(0))
    inverted = np.isclose(striped, 1 - colour).all(axis=(0, 2))
    assert inverted.tolist() == [True] * 8 + [False] * 16 + [True] * 8


def test_frame_columns_are_theirs_at_28_and_stretched_elsewhere() -> None:
    assert frame_columns(28).tolist() == list(range(28))
    assert frame_columns(56).tolist() == [column // 2 for column in range(56)]


def test_dotted_line_is_their_line_on_alternate_column_pairs() -> None:
    black = np.zeros((28, 28, 1))
    drawn = dotted_line(black, None, FixedIntegers(10, 10))[..., 0]  # a horizontal line on row 10
    dashes = [column for column in range(27) if (column // 2) % 2 == 1]
    expected = np.zeros((28, 28))
    expected[10, dashes] = 1.0
    expected[9, dashes] = expected[11, dashes] = ONE_ROW_OFF
    np.testing.assert_allclose(drawn, expected, atol=1e-12)


def test_dotted_line_adds_light_on_dash_columns_only_at_a_drawn_slope() -> None:
    image = as_image(grey_bars()[1])
    drawn = dotted_line(image, None, np.random.default_rng(7)) - image
    assert drawn.min() >= 0 and drawn.max() == pytest.approx(1.0, abs=0.2)
    lit_columns = np.flatnonzero(drawn.max(axis=(0, 2)) > 0)
    assert all((column // 2) % 2 == 1 and column < 27 for column in lit_columns)
    rows_lit = {
        int(np.argmax(dotted_line(np.zeros((28, 28, 1)), None, np.random.default_rng(seed))[:, 2, 0]))
        for seed in range(20)
    }
    assert len(rows_lit) > 5  # the line's start row is drawn


def test_zigzag_vertices_of_a_level_line() -> None:
    columns, rows = zigzag_vertices(10, 10)
    np.testing.assert_allclose(columns, [2, 4, 8, 12, 16, 20, 24, 25])
    np.testing.assert_allclose(rows, [10, 12, 8, 12, 8, 12, 8, 10 - 2 / 6])


def test_zigzag_draws_through_its_vertices_between_columns_2_and_24() -> None:
    drawn = zigzag(np.zeros((28, 28, 1)), None, FixedIntegers(10, 0))[..., 0]
    for row, column in [(10, 2), (12, 4), (8, 8), (10, 6), (12, 12), (8, 24)]:
        assert drawn[row, column] >= 1.0, (row, column)
    assert not drawn[:, :2].any() and not drawn[:, 25:].any()
    assert not drawn[:6].any() and not drawn[15:].any()


def test_zigzag_on_colour_is_white_and_its_row_is_drawn() -> None:
    drawn = zigzag(np.zeros((32, 32, 3)), None, np.random.default_rng(2))
    np.testing.assert_array_equal(drawn[..., 0], drawn[..., 2])
    assert drawn.max() >= 1.0
    starts = {
        int(np.argmax(zigzag(np.zeros((28, 28, 1)), None, np.random.default_rng(seed))[:, 2, 0]))
        for seed in range(20)
    }
    assert len(starts) > 5


def test_spatter_on_white_is_grey_mud_and_covers_about_an_eighth() -> None:
    level = corruption("spatter").levels[3]
    covered = []
    for seed in range(40):
        muddy = spatter(np.ones((28, 28, 1)), level, np.random.default_rng(seed))
        changed = muddy < 1.0
        # Opacity at least 0.8: at most 1 - 0.8 (1 - 63/255) where it changed.
        assert (muddy[changed] <= 1 - 0.8 * (1 - 63 / 255) + 1e-12).all()
        covered.append(changed.mean())
    assert 0.05 < np.mean(covered) < 0.3


def test_spatter_on_colour_is_brown_mud() -> None:
    level = corruption("spatter").levels[3]
    muddy = spatter(np.ones((32, 32, 3)), level, np.random.default_rng(1))
    changed = (muddy < 1.0).any(axis=2)
    assert changed.any()
    toward_mud = (1 - muddy[changed]) / (1 - MUD_RGB)  # each channel moved by the same opacity
    np.testing.assert_allclose(toward_mud, toward_mud[:, :1].repeat(3, axis=1), atol=1e-12)


def test_spatter_keeps_its_coverage_on_a_larger_image() -> None:
    level = corruption("spatter").levels[3]

    def coverage(side: int) -> float:
        return float(
            np.mean(
                [
                    (spatter(np.ones((side, side, 1)), level, np.random.default_rng(seed)) < 1).mean()
                    for seed in range(40)
                ]
            )
        )

    assert coverage(56) == pytest.approx(coverage(28), rel=0.25)


def test_lines_leave_the_image_below_them() -> None:
    images = grey_bars()
    for name in ("dotted_line", "zigzag"):
        out = corrupt(images, name)
        assert (out >= images - 1 / 510).all()
