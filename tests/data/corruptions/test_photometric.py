"""Photometric corruptions (labelemb.data.corruptions.photometric): brightness, contrast, fog."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from helpers.image_corruption_checks import as_image, check_image_corruption, colour_images, grey_bars

from labelemb.data.corruptions import corrupt, corruption
from labelemb.data.corruptions.photometric import brightness, contrast, fog, fog_layer, plasma_fractal


def eight_bit(values: np.ndarray) -> np.ndarray:
    """``values`` clipped and rounded to 8-bit levels, as ``corrupt`` saves them."""
    return np.round(np.clip(values, 0, 1) * 255) / 255


@pytest.mark.parametrize("name", ["brightness", "contrast", "fog"])
@pytest.mark.parametrize("images", [grey_bars(), colour_images()], ids=["grey", "colour"])
def test_contract_and_determinism(name: str, images: torch.Tensor) -> None:
    out = check_image_corruption(images, name)
    assert not torch.equal(out, images)


def test_registered_settings() -> None:
    assert corruption("brightness").levels == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert corruption("brightness").mnist_c == 5 and not corruption("brightness").scaled
    assert corruption("contrast").levels == (0.4, 0.3, 0.2, 0.1, 0.05)
    assert corruption("contrast").mnist_c is None and corruption("contrast").scaled
    assert corruption("contrast").default_severity() == 3
    assert corruption("fog").levels[4] == (3.0, 1.4) and corruption("fog").mnist_c == 5


def test_brightness_on_grey_raises_each_value_by_the_level() -> None:
    images = grey_bars()
    out = corrupt(images, "brightness")  # MNIST-C's severity 5: + 0.5
    expected = eight_bit(images.double().numpy() + 0.5)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-7)
    means = [float(corrupt(images, "brightness", severity).mean()) for severity in range(1, 6)]
    assert float(images.mean()) < means[0] and means == sorted(means) and len(set(means)) == 5


def test_brightness_on_colour_raises_the_hsv_value_and_keeps_hue_and_saturation() -> None:
    image = as_image(colour_images()[1])
    image[0, 0] = 0.0  # a black pixel: value 0, becomes the grey of its new value
    for level in (0.1, 0.5):
        out = brightness(image, level, np.random.default_rng(0))
        for row, column in [(0, 0), (3, 5), (12, 12), (25, 30), (31, 2)]:
            hue, saturation, value = colorsys.rgb_to_hsv(*image[row, column])
            expected = colorsys.hsv_to_rgb(hue, saturation, min(value + level, 1.0))
            np.testing.assert_allclose(out[row, column], expected, atol=1e-12)
    np.testing.assert_allclose(brightness(image, 0.5, np.random.default_rng(0))[0, 0], [0.5, 0.5, 0.5])


@pytest.mark.parametrize("images", [grey_bars(), colour_images()], ids=["grey", "colour"])
def test_contrast_shrinks_each_channel_towards_its_mean(images: torch.Tensor) -> None:
    image = as_image(images[1])
    out = contrast(image, 0.2, np.random.default_rng(0))
    np.testing.assert_allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1e-12)
    np.testing.assert_allclose(out.std(axis=(0, 1)), 0.2 * image.std(axis=(0, 1)), atol=1e-12)


def test_contrast_falls_with_severity() -> None:
    images = colour_images()
    spreads = [float(corrupt(images, "contrast", severity).std()) for severity in range(1, 6)]
    assert float(images.std()) > spreads[0]
    assert all(higher > lower for higher, lower in zip(spreads, spreads[1:])), spreads


def test_plasma_fractal_is_a_smooth_map_in_zero_one_from_the_generator() -> None:
    heights = plasma_fractal(256, 1.4, np.random.default_rng(3))
    assert heights.shape == (256, 256) and heights.min() == 0.0 and heights.max() == 1.0
    np.testing.assert_array_equal(heights, plasma_fractal(256, 1.4, np.random.default_rng(3)))
    assert not np.array_equal(heights, plasma_fractal(256, 1.4, np.random.default_rng(4)))
    # Neighbours differ far less than the map varies (white noise: about 1.1 standard deviations).
    assert np.abs(np.diff(heights, axis=1)).mean() < 0.3 * heights.std()


def test_a_lower_decay_is_a_rougher_fractal() -> None:
    def roughness(decay: float) -> float:
        corners = [plasma_fractal(256, decay, np.random.default_rng(seed))[:28, :28] for seed in range(10)]
        return float(np.mean([np.abs(np.diff(corner, axis=1)).mean() / corner.std() for corner in corners]))

    assert roughness(1.4) > 1.5 * roughness(2.0)


def test_plasma_fractal_side_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(100, 2.0, np.random.default_rng(0))


def test_fog_layer_is_their_corner_of_the_map_at_28_and_it_stretched_elsewhere() -> None:
    corner = plasma_fractal(256, 1.4, np.random.default_rng(5))[:28, :28]
    np.testing.assert_array_equal(fog_layer(28, 28, 1.4, np.random.default_rng(5)), corner)
    stretched = fog_layer(56, 56, 1.4, np.random.default_rng(5))
    assert stretched.shape == (56, 56)
    assert corner.min() <= stretched.min() and stretched.max() <= corner.max()
    magnified = np.kron(corner, np.ones((2, 2)))
    assert np.corrcoef(stretched.ravel(), magnified.ravel())[0, 1] > 0.9
    # Pixel 2j + 1 of 56 sits at j + 0.25 of 28: three quarters of pixel j, a quarter of j + 1.
    near, far = corner[:-1], corner[1:]
    along_rows = 0.75 * near + 0.25 * far
    expected = 0.75 * along_rows[:, :-1] + 0.25 * along_rows[:, 1:]
    np.testing.assert_allclose(stretched[1:-2:2, 1:-2:2], expected, atol=1e-12)
    layer = fog_layer(32, 40, 1.4, np.random.default_rng(5))
    assert layer.shape == (32, 40) and corner.min() <= layer.min() and layer.max() <= corner.max()


def test_fog_adds_the_layer_and_scales_the_image_by_max_over_max_plus_thickness() -> None:
    first, second = (as_image(image) for image in grey_bars())
    second = second / second.max()  # both brightest at 1: the same scale max / (max + 3) = 1/4
    foggy_first = fog(first, (3.0, 1.4), np.random.default_rng(0))
    foggy_second = fog(second, (3.0, 1.4), np.random.default_rng(0))
    np.testing.assert_allclose(foggy_first - foggy_second, (first - second) / 4, atol=1e-12)
    assert foggy_first.max() <= 1.0 + 1e-12
    background = first == 0
    assert foggy_first[background].mean() > 0.05  # the fog lights the black background


def test_fog_leaves_a_black_image_black() -> None:
    black = np.zeros((28, 28, 1))
    np.testing.assert_array_equal(fog(black, (3.0, 1.4), np.random.default_rng(0)), black)


def test_fog_on_colour_is_the_same_on_every_channel() -> None:
    grey = np.full((32, 32, 3), 0.5)
    foggy = fog(grey, (3.0, 1.4), np.random.default_rng(1))
    np.testing.assert_array_equal(foggy[..., 0], foggy[..., 1])
    np.testing.assert_array_equal(foggy[..., 0], foggy[..., 2])
    assert foggy.std() > 0
