"""Affine corruptions (labelemb.data.corruptions.geometric): shear, scale, rotate, translate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.corruption_measures import EVERY_KIND, assert_stronger_with_severity, bar_image, mass_centre
from helpers.image_corruption_checks import check_image_corruption, colour_images

from labelemb.data.corruptions import corrupt, corruption

NAMES = ["shear", "scale", "rotate", "translate"]


def turn(clean: torch.Tensor, rotated: torch.Tensor) -> float:
    """The angle (radians, in (-pi, pi]) by which the first image's centre of mass turned about the
    image's centre."""
    before, after = mass_centre(clean[0, 0]), mass_centre(rotated[0, 0])
    angle = math.atan2(after[0], after[1]) - math.atan2(before[0], before[1])
    return math.remainder(angle, 2 * math.pi)


def centred_vertical_bar() -> torch.Tensor:
    """A bar 12 rows tall and 2 columns wide whose centre is the image's centre."""
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 8:20, 13:15] = 1.0
    return image


@pytest.mark.parametrize("name", NAMES)
@EVERY_KIND
def test_contract_and_determinism_at_every_severity(name: str, images: torch.Tensor) -> None:
    for severity in corruption(name).severities():
        assert not torch.equal(check_image_corruption(images, name, severity), images)


@pytest.mark.parametrize("name", NAMES)
def test_warps_move_every_colour_channel_as_a_grey_image(name: str) -> None:
    images = colour_images()
    warped = corrupt(images, name, 5)
    for channel in range(3):
        assert torch.equal(
            warped[:, channel : channel + 1], corrupt(images[:, channel : channel + 1], name, 5)
        )


def test_the_registered_settings_are_mnist_c_s() -> None:
    assert corruption("shear").levels == (0.2, 0.4, 0.6, 0.8, 1.0) and corruption("shear").mnist_c == 2
    assert corruption("rotate").levels == (0.2, 0.4, 0.6, 0.8, 1.0) and corruption("rotate").mnist_c == 2
    # their scale factors are 1 / level: (1/.9, 1/.8, 1/.7, 1/.6, 1/.5)
    assert corruption("scale").levels == (0.9, 0.8, 0.7, 0.6, 0.5) and corruption("scale").mnist_c == 3
    assert corruption("translate").levels == (1, 2, 3, 4, 5) and corruption("translate").mnist_c == 3
    assert [corruption(name).scaled for name in NAMES] == [False, False, True, False]


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_rotate_turns_the_bar_s_centre_of_mass_by_the_level(severity: int) -> None:
    level = corruption("rotate").level(severity)
    images = bar_image()
    rotated = corrupt(images, "rotate", severity)
    assert abs(turn(images, rotated)) == pytest.approx(level, abs=0.02)
    assert np.linalg.norm(mass_centre(rotated[0, 0])) == pytest.approx(
        np.linalg.norm(mass_centre(images[0, 0])), rel=0.02
    )
    assert float(rotated.sum()) == pytest.approx(float(images.sum()), rel=0.03)


def test_rotate_turns_either_way_and_more_at_each_severity() -> None:
    images = torch.cat([bar_image()] * 8)
    rotated = corrupt(images, "rotate")
    turns = [turn(images[index : index + 1], rotated[index : index + 1]) for index in range(8)]
    assert min(turns) < 0 < max(turns)
    assert_stronger_with_severity("rotate", bar_image(), lambda clean, rotated: abs(turn(clean, rotated)))


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_translate_moves_the_image_by_the_level_in_pixels(severity: int) -> None:
    level = corruption("translate").level(severity)
    images = bar_image()
    moved = corrupt(images, "translate", severity)
    shift = mass_centre(moved[0, 0]) - mass_centre(images[0, 0])
    assert np.allclose(np.abs(shift), [level, level])
    # a whole-pixel shift moves the pixels as they are
    rows, columns = (int(round(step)) for step in shift)
    assert torch.equal(moved, images.roll((rows, columns), dims=(2, 3)))


def test_translate_draws_each_axis_s_direction_on_its_own() -> None:
    images = torch.cat([bar_image()] * 16)
    moved = corrupt(images, "translate", 1)
    shifts = {
        tuple(np.sign(mass_centre(moved[index, 0]) - mass_centre(images[index, 0])).astype(int))
        for index in range(16)
    }
    assert shifts == {(-1, -1), (-1, 1), (1, -1), (1, 1)}


def test_translate_shifts_by_the_level_times_the_side_over_28() -> None:
    images = bar_image(56, 84)
    moved = corrupt(images, "translate", 2)
    shift = mass_centre(moved[0, 0]) - mass_centre(images[0, 0])
    assert np.allclose(np.abs(shift), [2 * 2, 2 * 3])


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_scale_shrinks_the_image_to_the_level_about_its_centre(severity: int) -> None:
    level = corruption("scale").level(severity)
    images = bar_image()
    shrunk = corrupt(images, "scale", severity)
    # within a fifth of a pixel: bilinear sampling of a sharp bar, shrunk, aliases a little
    assert mass_centre(shrunk[0, 0]) == pytest.approx(level * mass_centre(images[0, 0]), abs=0.2)
    assert float(shrunk.sum()) == pytest.approx(level**2 * float(images.sum()), rel=0.05)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_shear_slants_a_vertical_bar_by_the_sine_and_stretches_it_by_1_over_the_cosine(severity: int) -> None:
    # scikit-image's shear of 2019: the inverse map (x, y) -> (x - sin(s) y, cos(s) y) about the centre
    level = corruption("shear").level(severity)
    images = centred_vertical_bar()
    sheared = corrupt(images, "shear", severity)[0, 0].double().numpy()
    rows = np.flatnonzero(sheared.sum(axis=1) > 0.5)
    columns = (sheared[rows] * np.arange(28)).sum(axis=1) / sheared[rows].sum(axis=1)
    slope = np.polyfit(rows, columns, 1)[0]
    assert abs(slope) == pytest.approx(math.sin(level), abs=0.03)
    row_mass = sheared.sum(axis=1)
    centre = 13.5
    height_variance = (row_mass * (np.arange(28) - centre) ** 2).sum() / row_mass.sum()
    assert height_variance == pytest.approx(144 / 12 / math.cos(level) ** 2, rel=0.05)
    assert mass_centre(sheared) == pytest.approx([0.0, 0.0], abs=0.05)


def test_shear_slants_either_way() -> None:
    images = torch.cat([centred_vertical_bar()] * 8)
    sheared = corrupt(images, "shear")
    slants = {float(np.sign(mass_centre(sheared[index, 0, :14])[1])) for index in range(8)}
    assert slants == {-1.0, 1.0}
