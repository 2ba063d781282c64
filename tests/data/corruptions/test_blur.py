"""Blurs (labelemb.data.corruptions.blur): gaussian, glass and motion blur."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.corruption_measures import EVERY_KIND, assert_stronger_with_severity, bar_image
from helpers.image_corruption_checks import check_image_corruption, colour_images

from labelemb.data.corruptions import corrupt, corruption
from labelemb.data.corruptions.blur import gaussian_blur, glass_blur, motion_blur, shuffle_locally

NAMES = ["gaussian_blur", "glass_blur", "motion_blur"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def point(side: int = 28, row: int = 14, column: int = 14, channels: int = 1) -> np.ndarray:
    """A black image (side, side, channels) with one white pixel: the blur's kernel shows in it."""
    image = np.zeros((side, side, channels))
    image[row, column] = 1.0
    return image


def spread(image: np.ndarray) -> np.ndarray:
    """The (row, column) variances of a 2-D image's mass about its centre of mass."""
    rows, columns = np.indices(image.shape)
    mass = image.sum()
    centre = [(rows * image).sum() / mass, (columns * image).sum() / mass]
    row_variance = ((rows - centre[0]) ** 2 * image).sum() / mass
    return np.array([row_variance, ((columns - centre[1]) ** 2 * image).sum() / mass])


class NoSwaps:
    """Stands for a numpy Generator in glass blur's shuffle whose coins all say "do not swap"."""

    def random(self, size: int) -> np.ndarray:
        return np.ones(size)

    def integers(self, low: int, high: int, size: tuple[int, int]) -> np.ndarray:
        return np.zeros(size, dtype=int)


@pytest.mark.parametrize("name", NAMES)
@EVERY_KIND
def test_contract_and_determinism_at_every_severity(name: str, images: torch.Tensor) -> None:
    for severity in corruption(name).severities():
        assert not torch.equal(check_image_corruption(images, name, severity), images)


@pytest.mark.parametrize("name", ["gaussian_blur", "motion_blur"])
def test_blurs_treat_each_colour_channel_as_a_grey_image(name: str) -> None:
    # the same draws for a colour image as for any one of its channels alone (glass blur's grey
    # images are the exception, tested below)
    images = colour_images()
    for channel in range(3):
        alone = corrupt(images[:, channel : channel + 1], name, 5)
        assert torch.equal(corrupt(images, name, 5)[:, channel : channel + 1], alone)


@pytest.mark.parametrize("name", NAMES)
def test_blurs_keep_the_image_s_mean(name: str) -> None:
    # a blur moves brightness about; a square right of the centre is far enough from the edges
    # (a motion blur's trail runs left) to lose none there
    images = torch.zeros(1, 1, 28, 28)
    images[0, 0, 10:18, 15:23] = 1.0
    changed = corrupt(images, name)
    assert abs(float(changed.mean() - images.mean())) < 0.02 * float(images.mean())


def test_the_registered_settings_are_mnist_c_s() -> None:
    assert corruption("glass_blur").levels == ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
    assert corruption("glass_blur").mnist_c == 1
    assert corruption("motion_blur").levels == ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
    assert corruption("motion_blur").mnist_c == 1
    assert corruption("gaussian_blur").levels == (1, 2, 3, 4, 6)
    assert corruption("gaussian_blur").mnist_c is None and corruption("gaussian_blur").scaled


@pytest.mark.parametrize("sigma", [1, 2, 3])
def test_gaussian_blur_spreads_a_point_by_the_level_in_pixels_of_a_28_image(sigma: int) -> None:
    blurred = gaussian_blur(point(28), sigma, rng())[..., 0]
    assert blurred.sum() == pytest.approx(1.0)
    assert spread(blurred) == pytest.approx([sigma**2, sigma**2], rel=0.01)
    # on a 56x56 image the same level spreads twice as far
    blurred = gaussian_blur(point(56, 28, 28), sigma, rng())[..., 0]
    assert spread(blurred) == pytest.approx([(2 * sigma) ** 2, (2 * sigma) ** 2], rel=0.01)


def test_gaussian_blur_repeats_the_edge_beyond_it_as_scikit_image_does() -> None:
    # a white first column: beyond the edge is white too, so the column keeps the kernel's half
    # on its side and half of its centre tap (scipy's truncation at 4 sigma, normalised)
    image = np.zeros((28, 28, 1))
    image[:, 0] = 1.0
    taps = np.exp(-(np.arange(-4, 5) ** 2) / 2)
    assert np.allclose(gaussian_blur(image, 1, rng())[:, 0], 0.5 + taps[4] / taps.sum() / 2)


def test_gaussian_blur_grows_with_severity() -> None:
    def bar_peak_lost(clean: torch.Tensor, blurred: torch.Tensor) -> float:
        return float(clean.max() - blurred.max())

    assert_stronger_with_severity("gaussian_blur", bar_image(), bar_peak_lost)


def test_shuffle_locally_swaps_pixels_with_near_neighbours_only() -> None:
    image = np.arange(28 * 28 * 2, dtype=float).reshape(28, 28, 2)
    shuffled = shuffle_locally(image, 2, 3, rng())
    # a permutation of whole pixels (both channels move together)
    assert np.array_equal(np.sort(shuffled.reshape(-1, 2), axis=0), image.reshape(-1, 2))
    assert np.array_equal(shuffled[..., 1] - shuffled[..., 0], np.ones((28, 28)))
    moved = shuffled[..., 0] != image[..., 0]
    assert 0.3 < moved.mean() < 0.9
    # the first row and column are never visited nor reached (offsets fall in [-2, 2))
    assert not moved[0].any() and not moved[:, 0].any()


def test_glass_blur_without_swaps_is_the_blur_twice_down_the_rows_of_a_grey_image() -> None:
    # MNIST-C's blurs ran down the rows only (scikit-image took a 2-D image's columns for
    # channels): a vertical bar spreads up and down, never sideways; a colour bar spreads both ways
    grey = bar_image().permute(0, 2, 3, 1)[0].double().numpy()
    blurred = glass_blur(grey, corruption("glass_blur").level(5), NoSwaps())[..., 0]
    bar_columns = grey[..., 0].any(axis=0)
    assert np.all(blurred[:, ~bar_columns] == 0)
    assert blurred[:, bar_columns].sum() == pytest.approx(grey.sum(), rel=0.02)
    # each of the two blurs adds sigma^2 to the bar's variance down the rows
    assert spread(blurred)[0] == pytest.approx(spread(grey[..., 0])[0] + 2 * 1.5**2, rel=0.05)
    colour = glass_blur(np.repeat(grey, 3, axis=2), corruption("glass_blur").level(5), NoSwaps())
    beside = np.flatnonzero(bar_columns)[[0, -1]] + [-1, 1]
    assert np.all(colour[8, beside] > 0)


def test_glass_blur_cuts_its_first_blur_to_8_bits_as_mnist_c_did() -> None:
    # a flat image of a value between 8-bit steps comes out one step down, the floor of 255 x
    flat = np.full((28, 28, 1), 100.7 / 255)
    assert np.allclose(glass_blur(flat, (0.7, 1, 2), rng()), 100 / 255)


def test_glass_blur_moves_pixels_more_than_its_blur_alone() -> None:
    images = bar_image()
    shuffled = corrupt(images, "glass_blur", 5)[0, 0].numpy()
    clean = images[0, 0, ..., None].double().numpy()
    blur_only = glass_blur(clean, corruption("glass_blur").level(5), NoSwaps())[..., 0]
    assert spread(shuffled)[1] > spread(blur_only)[1] + 0.5


def test_motion_blur_smears_a_point_into_a_line_behind_it_at_up_to_45_degrees() -> None:
    for seed in range(8):
        smeared = motion_blur(point(28, 14, 24), (10, 3), rng(seed))[..., 0]
        assert smeared.sum() == pytest.approx(1.0, abs=1e-3)
        rows, columns = np.nonzero(smeared > 1e-4)
        # output (r, c) reads input (r + i sin a, c + i cos a): the trail lies left of the point
        assert np.all(columns <= 24) and columns.min() < 24 - 6
        assert np.all(np.abs(rows - 14) <= 24 - columns + 1)


def test_motion_blur_keeps_a_flat_image_flat_up_to_its_edges() -> None:
    # ImageMagick reads a pixel beyond the edge as the edge's (its default virtual pixels)
    for seed in range(4):
        assert np.allclose(motion_blur(np.full((28, 28, 1), 0.8), (20, 15), rng(seed)), 0.8)


def test_motion_blur_draws_its_angle_per_example() -> None:
    images = torch.zeros(4, 1, 28, 28)
    images[:, 0, 10:18, 10:18] = 1.0
    smeared = corrupt(images, "motion_blur", 5)
    assert len({smeared[index].numpy().tobytes() for index in range(4)}) == 4


def test_motion_blur_reaches_further_on_a_larger_image() -> None:
    small = motion_blur(point(28, 14, 24), (15, 5), rng())[..., 0]
    large = motion_blur(point(56, 28, 48), (15, 5), rng())[..., 0]
    assert spread(large).sum() == pytest.approx(4 * spread(small).sum(), rel=0.15)
