"""Calibration per tag (labelemb.metrics.tag_calibration): the marginal ECE by hand and against
torchmetrics' binary calibration error, and the temperature fits recovering known temperatures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_calibration_error

from labelemb.metrics.tag_calibration import (
    fit_tag_temperature,
    fit_tag_temperatures,
    marginal_ece,
    tag_calibration_errors,
    tag_temperatures,
)
from labelemb.metrics.temperature import TEMPERATURE_RANGE

# Four examples, four tags: tag 2 carried by none, tag 3 by all.
PROBABILITIES = torch.tensor(
    [
        [0.9, 0.5, 0.2, 1.0],
        [0.9, 0.5, 0.2, 1.0],
        [0.1, 0.5, 0.2, 0.75],
        [0.3, 0.5, 0.2, 1.0],
    ],
    dtype=torch.float64,
)
TAGS = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1]], dtype=torch.bool)


def test_the_marginal_ece_is_the_hand_computation():
    # 15 bins, bin b = (b / 15, (b + 1) / 15]; sum_b |hits_b - probability sum_b| / N per tag.
    expected = [
        # 0.9, 0.9 in bin 13 (one carried): |1 - 1.8|; 0.1 in bin 1: |0 - 0.1|; 0.3 in bin 4: |0 - 0.3|.
        (0.8 + 0.1 + 0.3) / 4,
        # One bin: three carried against 4 x 0.5.
        abs(3 - 2.0) / 4,
        # Never carried: its mean probability.
        0.2,
        # Always carried: 1.0 in the last bin (no gap), 0.75 in bin 11: |1 - 0.75|.
        0.25 / 4,
    ]
    assert tag_calibration_errors(PROBABILITIES, TAGS) == pytest.approx(expected)
    assert marginal_ece(PROBABILITIES, TAGS) == pytest.approx(sum(expected) / 4)
    # Numpy arrays and float32 tensors read the same.
    assert marginal_ece(PROBABILITIES.numpy(), TAGS.numpy()) == pytest.approx(sum(expected) / 4)
    assert marginal_ece(PROBABILITIES.float(), TAGS) == pytest.approx(sum(expected) / 4, abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_marginal_ece_is_torchmetrics_binary_calibration_error_averaged_over_the_tags(seed):
    generator = torch.Generator().manual_seed(seed)
    count, width = 300, 7
    # Logits of a few spreads, so probabilities crowd near 0 and 1 as a sigmoid's do.
    logits = torch.randn(count, width, generator=generator, dtype=torch.float64) * torch.linspace(
        0.5, 6, width
    )
    probabilities = torch.sigmoid(logits)
    rates = torch.linspace(0.05, 0.7, width)
    tags = torch.rand(count, width, generator=generator, dtype=torch.float64) < rates
    tags[:, 0] = False  # a tag never carried
    tags[:, 1] = True  # a tag always carried
    theirs = [
        float(
            binary_calibration_error(
                probabilities[:, k].contiguous(), tags[:, k].long(), n_bins=15, norm="l1"
            )
        )
        for k in range(width)
    ]
    assert tag_calibration_errors(probabilities, tags) == pytest.approx(theirs, abs=1e-12)
    assert marginal_ece(probabilities, tags) == pytest.approx(float(np.mean(theirs)), abs=1e-12)


def test_the_marginal_ece_refuses_what_is_no_probability():
    with pytest.raises(ValueError, match="one shape"):
        marginal_ece(PROBABILITIES, TAGS[:, :3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        marginal_ece(PROBABILITIES * 2, TAGS)
    with pytest.raises(ValueError, match="NaN"):
        marginal_ece(torch.full((2, 2), math.nan), torch.ones(2, 2, dtype=torch.bool))


def drawn(temperatures: list[float], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z ~ N(0, 3^2) and tags drawn as Bernoulli(sigmoid(z / T0)), T0 the column's."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(count, len(temperatures)))
    tags = rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits / np.asarray(temperatures)))
    return logits, tags


def mean_cross_entropy(logits: np.ndarray, tags: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    return float(np.mean(np.logaddexp(0.0, scaled) - tags * scaled))


@pytest.mark.parametrize("true_temperature", [0.4, 1.0, 2.5])
def test_the_one_temperature_recovers_the_temperature_the_tags_were_drawn_at(true_temperature):
    logits, tags = drawn([true_temperature] * 4, 5000, seed=0)
    fitted = fit_tag_temperature(logits, tags)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    # The minimum of the cross-entropy: no temperature of a fine grid does better.
    grid = np.geomspace(fitted / 1.5, fitted * 1.5, 301)
    best = min(mean_cross_entropy(logits, tags, t) for t in grid)
    assert mean_cross_entropy(logits, tags, fitted) <= best + 1e-12


def test_each_tag_gets_its_own_temperature_and_an_unfittable_tag_keeps_one():
    true = [0.5, 1.0, 2.0, 4.0]
    logits, tags = drawn([*true, 1.0, 1.0], 8000, seed=1)
    tags[:, 4] = False  # dev never carries it: no finite optimum
    tags[:, 5] = True  # dev always carries it: none either
    fitted = fit_tag_temperatures(torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(tags))
    assert fitted.shape == (6,)
    assert fitted[:4] == pytest.approx(true, rel=0.08)
    assert fitted[4] == 1.0 and fitted[5] == 1.0
    # Each tag's own minimum: its column fit alone gives the same.
    for k in range(4):
        assert fit_tag_temperature(logits[:, [k]], tags[:, [k]]) == pytest.approx(fitted[k], rel=1e-4)
    both = tag_temperatures(logits, tags)
    assert both.per_tag == pytest.approx(fitted, rel=1e-6)
    assert both.one == pytest.approx(fit_tag_temperature(logits, tags))
    # A temperature for all tags lies between the tags' own.
    assert min(true) < both.one < max(true)


def test_one_temperature_of_tags_all_carried_or_none_is_one_and_a_separated_tag_takes_the_floor():
    logits = np.array([[2.0, -1.0], [-3.0, 0.5]])
    assert fit_tag_temperature(logits, np.zeros((2, 2), dtype=bool)) == 1.0
    assert fit_tag_temperature(logits, np.ones((2, 2), dtype=bool)) == 1.0
    # Carried where the logit is positive, not where it is negative: the cross-entropy falls as
    # T falls, down to the range's floor.
    separated = fit_tag_temperature(logits, logits > 0)
    assert separated == pytest.approx(TEMPERATURE_RANGE[0], rel=1e-3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_logits_are_refused(bad):
    logits, tags = drawn([1.0, 1.0], 20, seed=2)
    logits[3, 1] = bad
    with pytest.raises(ValueError, match="non-finite logits"):
        fit_tag_temperature(logits, tags)
    with pytest.raises(ValueError, match="non-finite logits"):
        fit_tag_temperatures(logits, tags)
