"""Pixel noise (labelemb.data.corruptions.noise): gaussian, shot and impulse noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.corruption_measures import EVERY_KIND, assert_stronger_with_severity, bar_image
from helpers.image_corruption_checks import check_image_corruption
from scipy.stats import binom, chi2

from labelemb.data.corruptions import corrupt, corruption

NAMES = ["gaussian_noise", "shot_noise", "impulse_noise"]
# Bounds this wide fail a correct implementation about once in a million seeds.
COVERAGE = 1 - 1e-6
#: Mid-grey on an 8-bit level, so that a value the noise leaves alone is read back unchanged.
MID = 128 / 255


def grey(value: float, side: int = 64, channels: int = 1) -> torch.Tensor:
    """One image of a single value, large enough for its noise's statistics."""
    return torch.full((1, channels, side, side), value)


def within_binomial(count: int, trials: int, probability: float) -> bool:
    low, high = binom.interval(COVERAGE, trials, probability)
    return low <= count <= high


@pytest.mark.parametrize("name", NAMES)
@EVERY_KIND
def test_contract_and_determinism_at_every_severity(name: str, images: torch.Tensor) -> None:
    for severity in corruption(name).severities():
        assert not torch.equal(check_image_corruption(images, name, severity), images)


@pytest.mark.parametrize("name", NAMES)
def test_each_example_gets_noise_of_its_own(name: str) -> None:
    changed = corrupt(torch.cat([grey(MID), grey(MID)]), name)
    assert not torch.equal(changed[0], changed[1])


def test_the_registered_settings_are_mnist_c_s() -> None:
    assert corruption("shot_noise").levels == (60, 25, 12, 5, 3)
    assert corruption("shot_noise").mnist_c == 5
    assert corruption("impulse_noise").levels == (0.03, 0.06, 0.09, 0.17, 0.27)
    assert corruption("impulse_noise").mnist_c == 4
    assert corruption("gaussian_noise").mnist_c is None and corruption("gaussian_noise").scaled
    assert not corruption("shot_noise").scaled and not corruption("impulse_noise").scaled


def test_gaussian_noise_has_mean_zero_and_the_level_as_its_spread() -> None:
    # at mid-grey and the lowest level nothing is clipped: the noise is the level's normal, plus
    # the 8-bit rounding's uniform error (variance 1 / (12 * 255^2))
    level = corruption("gaussian_noise").level(1)
    noise = (corrupt(grey(MID), "gaussian_noise", 1) - MID).double().flatten().numpy()
    variance = level**2 + 1 / (12 * 255**2)
    degrees = noise.size
    low, high = chi2.interval(COVERAGE, degrees)
    assert low <= (noise**2).sum() / variance <= high
    assert abs(noise.mean()) < 5 * np.sqrt(variance / degrees)


def test_gaussian_noise_grows_with_severity() -> None:
    assert_stronger_with_severity("gaussian_noise", torch.cat([grey(MID, 28), bar_image()]))


def test_shot_noise_is_a_photon_count_over_the_level() -> None:
    # at the fewest photons (3 per unit) every value is 0, 1/3, 2/3 or 1 (8-bit rounded): a count
    level = corruption("shot_noise").level(5)
    changed = corrupt(grey(MID), "shot_noise", 5)
    counts = np.unique(changed.numpy() * 255)
    assert set(counts) <= {round(255 * k / level) for k in range(level + 1)}
    assert len(counts) >= 3


def test_shot_noise_has_the_poisson_mean_and_variance() -> None:
    level = corruption("shot_noise").level(1)
    counts = (corrupt(grey(MID), "shot_noise", 1).double() * level).flatten().numpy()
    expected = MID * level
    trials = counts.size
    # the 8-bit rounding moves a value by at most 0.5 / 255, a count by 0.5 * level / 255 < 0.12
    assert abs(counts.mean() - expected) < 5 * np.sqrt(expected / trials) + 0.12
    assert 0.9 * expected < counts.var() < 1.1 * expected


def test_shot_noise_keeps_black_black() -> None:
    images = bar_image()
    changed = corrupt(images, "shot_noise")
    assert torch.all(changed[images == 0] == 0)
    assert not torch.equal(changed[images == 1], images[images == 1])


@pytest.mark.parametrize("severity", [1, 4, 5])
def test_impulse_noise_turns_the_level_s_share_of_values_to_black_or_white(severity: int) -> None:
    level = corruption("impulse_noise").level(severity)
    clean = torch.cat([grey(MID), grey(MID)])
    changed = corrupt(clean, "impulse_noise", severity)
    hit = changed != MID
    assert torch.all((changed[hit] == 0) | (changed[hit] == 1))
    assert torch.all(changed[~hit] == MID)
    count, trials = int(hit.sum()), hit.numel()
    assert within_binomial(count, trials, level)
    assert within_binomial(int((changed == 1).sum()), count, 0.5)


def test_impulse_noise_hits_each_colour_channel_on_its_own() -> None:
    # as scikit-image's random_noise does (ImageNet-C's and MNIST-C's), value by value
    changed = corrupt(grey(MID, channels=3), "impulse_noise", 5)[0]
    hit = changed != MID
    partly = hit.any(dim=0) & ~hit.all(dim=0)
    assert int(partly.sum()) > 0
