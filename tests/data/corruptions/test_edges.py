"""Canny edges (labelemb.data.corruptions.edges)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.image_corruption_checks import check_image_corruption, colour_images, grey_bars

from labelemb.data.corruptions import corrupt, corruption
from labelemb.data.corruptions.edges import canny, canny_edges, hysteresis


def soft_square(side: int = 28, start: int = 8, stop: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A bright square on black whose one-pixel border ring is half bright (an anti-aliased edge,
    so the gradient peaks on the ring), and its outline: the ring with each corner cut one pixel
    diagonally inwards, as Canny (and scikit-image's) rounds a right angle."""
    image = np.zeros((side, side))
    image[start:stop, start:stop] = 0.5
    image[start + 1 : stop - 1, start + 1 : stop - 1] = 1.0
    outline = np.zeros((side, side), dtype=bool)
    outline[start:stop, start:stop] = True
    outline[start + 1 : stop - 1, start + 1 : stop - 1] = False
    last = stop - 1
    for row, column, inward_row, inward_column in [
        (start, start, start + 1, start + 1),
        (start, last, start + 1, last - 1),
        (last, start, last - 1, start + 1),
        (last, last, last - 1, last - 1),
    ]:
        outline[row, column], outline[inward_row, inward_column] = False, True
    return image, outline


@pytest.mark.parametrize("images", [grey_bars(), colour_images()], ids=["grey", "colour"])
def test_contract_and_determinism(images: torch.Tensor) -> None:
    out = check_image_corruption(images, "canny_edges")
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_registered_settings() -> None:
    assert corruption("canny_edges").levels == (None,) and corruption("canny_edges").mnist_c == 1


def test_a_square_gives_a_one_pixel_outline_at_its_border_and_nothing_else() -> None:
    image, outline = soft_square()
    edges = canny(image)
    np.testing.assert_array_equal(edges, outline)
    assert (edges[10:18].sum(axis=1) == 2).all() and (edges[:, 10:18].sum(axis=0) == 2).all()
    out = canny_edges(image[..., None], None, np.random.default_rng(0))
    np.testing.assert_array_equal(out[..., 0], outline.astype(float))


def test_a_colour_square_has_its_outline_on_every_channel() -> None:
    image, outline = soft_square()
    colour = image[..., None] * np.array([0.9, 0.6, 0.3])  # found on the luminance
    out = canny_edges(colour, None, np.random.default_rng(0))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], outline.astype(float))


def test_a_uniform_image_has_no_edges() -> None:
    for value in (0.0, 0.4, 1.0):
        assert not canny(np.full((28, 28), value)).any()


def test_a_faint_square_is_below_the_thresholds() -> None:
    image, _ = soft_square()
    # Its gradient peaks near 0.01 * 2.6 on the ring, under the low threshold 0.1.
    assert not canny(0.01 * image).any()


def test_hysteresis_keeps_weak_edges_joined_to_a_strong_one() -> None:
    magnitude = np.zeros((6, 8))
    magnitude[1, 1:4] = [0.15, 0.15, 0.25]  # a weak run ending in a strong pixel
    magnitude[2, 4] = 0.12  # diagonal to it: joined (8-connected)
    magnitude[4, 5:7] = 0.15  # weak only: dropped
    magnitude[4, 1] = 0.05  # below the low threshold: dropped
    kept = hysteresis(magnitude > 0, magnitude, 0.1, 0.2)
    expected = np.zeros((6, 8), dtype=bool)
    expected[1, 1:4] = True
    expected[2, 4] = True
    np.testing.assert_array_equal(kept, expected)


def test_a_magnified_square_gives_the_same_outline_at_its_scale() -> None:
    small, _ = soft_square(28, 8, 20)
    large = np.kron(small, np.ones((2, 2)))  # each pixel now 2x2: a two-pixel-wide soft ring
    edges = canny(large, (2.0, 2.0))
    assert edges.any()
    rows = np.flatnonzero(edges.any(axis=1))
    assert rows.min() >= 15 and rows.max() <= 40  # on the soft ring (rows 16-17 and 38-39)
    assert not edges[20:36, 20:36].any() and not edges[:15].any()


def test_edges_of_a_digit_bar_from_corrupt() -> None:
    images = grey_bars()
    out = corrupt(images, "canny_edges")[0, 0]
    bar = images[0, 0] > 0
    assert out[bar.roll(1, 0) | bar.roll(-1, 0) | bar.roll(1, 1) | bar.roll(-1, 1)].sum() == out.sum()
    assert out.sum() > 20
