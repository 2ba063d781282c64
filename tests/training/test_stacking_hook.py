"""A backbone batches when its class defines ``stacked_forward``: no list in the batched trainer.

``stacked_forward(params, inputs)`` gives features ``(S, B, d)`` of inputs ``(S, B, ...)``, row ``s``
through seed ``s``'s parameters ``params[name][s]``. A model registered here with the hook trains
batched, with each seed's own numbers; one without it is refused with the list of those that batch.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers.batched_checks import train_batched
from torch import Tensor, nn

from labelemb import models
from labelemb.models.stacked_layers import check_grouped_layers
from labelemb.stacking import linear
from labelemb.training import (
    BatchedConfigError,
    Classification,
    build_run,
    supports_batched,
    train,
    unsupported_reason,
)
from labelemb.training.batched import batched_models
from labelemb.training.stacked import Stacked

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = (0, 1)


class Scaled(nn.Module):
    """``h = s * ReLU(W x)``: a per-feature learned scale after one layer, no Sequential."""

    output_init_std = None

    def __init__(self, input_shape: tuple[int, ...], width: int = 16) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(width, math.prod(input_shape)) * 0.1)
        self.scale = nn.Parameter(torch.ones(width))
        self.out_features = width

    def forward(self, images: Tensor) -> Tensor:
        return self.scale * F.relu(F.linear(images.flatten(1), self.weight))


class StackedScaled(Scaled):
    """:class:`Scaled` with its grouped forward: the batched trainer needs nothing more."""

    def stacked_forward(self, params: dict[str, Tensor], images: Tensor) -> Tensor:
        return params["scale"].unsqueeze(1) * F.relu(linear(images.flatten(2), params["weight"]))


@pytest.fixture
def registered(monkeypatch):
    """Both test models registered, in a copy of the registry that the test's end throws away."""
    monkeypatch.setattr(models.MODELS, "_entries", dict(models.MODELS._entries))
    models.register("scaled", inputs="images")(Scaled)
    models.register("stacked_scaled", inputs="images")(StackedScaled)


def test_a_model_with_the_hook_trains_batched_as_each_seed_alone(registered, small_config, digits, tmp_path):
    assert "stacked_scaled" in batched_models()
    overrides = ("model={name: stacked_scaled, width: 8}", "method.name=onehot")
    assert supports_batched(small_config(*overrides))
    configs = [small_config(*overrides, seed=s) for s in SEEDS]
    runs = [build_run(config, digits, torch.device("cpu"), Classification()) for config in configs]
    stack = Stacked(runs, Classification(), torch.device("cpu"))
    images = digits.train.images[torch.arange(2 * 30).view(2, 30)]
    features = stack.features(images)
    for s, run in enumerate(runs):
        torch.testing.assert_close(features[s], run.model(images[s]), rtol=1e-5, atol=1e-6)

    batched = train_batched(
        [small_config(*overrides, output_dir=tmp_path / "batched", seed=s) for s in SEEDS],
        dataset=digits,
    )
    for s, summary in zip(SEEDS, batched):
        alone = train(small_config(*overrides, output_dir=tmp_path / "alone", seed=s), dataset=digits)
        assert summary["batched_seeds"] == len(SEEDS)
        assert abs(summary["final_test_error"] - alone["final_test_error"]) <= 100.0 / len(digits.test) + 1e-9


def test_a_model_without_the_hook_is_refused_naming_those_that_batch(registered, small_config, digits):
    config = small_config("model={name: scaled}")
    assert "scaled" not in batched_models()
    assert not supports_batched(config)
    reason = unsupported_reason(config)
    assert reason.startswith("model 'scaled' is not batched")
    assert f"batched models: {', '.join(batched_models())}," in reason
    assert {"mlp", "cnn", "bag_of_words", "stacked_scaled"} <= set(batched_models())
    # Frozen, any backbone batches: its feature head has the hook.
    assert supports_batched(small_config("model={name: scaled, freeze: true}"))
    runs = [
        build_run(small_config("model={name: scaled}", seed=s), digits, torch.device("cpu"), Classification())
        for s in SEEDS
    ]
    with pytest.raises(BatchedConfigError, match="Scaled is not a backbone the batched trainer can stack"):
        Stacked(runs, Classification(), torch.device("cpu"))


def test_the_grouped_layers_refuse_what_they_cannot_run():
    check_grouped_layers([nn.Flatten(), nn.Linear(4, 3), nn.ReLU()])
    with pytest.raises(ValueError, match="cannot stack a Tanh layer"):
        check_grouped_layers([nn.Flatten(), nn.Tanh()])
    with pytest.raises(ValueError, match="Flatten before a Linear"):
        check_grouped_layers([nn.Conv2d(1, 2, 3), nn.Linear(4, 3)])
    with pytest.raises(ValueError, match=r"ends in \(N, features\)"):
        check_grouped_layers([nn.Conv2d(1, 2, 3)])
