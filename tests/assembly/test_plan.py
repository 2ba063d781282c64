"""A run's config is resolved once (labelemb.assembly.resolve) into the typed parts of its plan,
checked there before any data is read; below that point nothing takes the config apart."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import labelemb.training
from labelemb.assembly.parts import DataSource
from labelemb.assembly.plan import plan_run, resolve
from labelemb.config import ConfigError
from labelemb.data.augment import Augment

TRAIN = Path(labelemb.training.__file__).parent
#: The modules below the resolution: they build and train from a plan's parts. Left out: plan.py
#: (the resolution), trainer.py and batched.py (the boundary: which configs are planned and
#: grouped), build.py and frozen.py's doors (a piece straight from a config, for predict and
#: analysis), and the callbacks handed configs by their documented hooks (early stopping, the
#: dev-split check).
BELOW = (
    "recipe.py",
    "seed_run.py",
    "single.py",
    "stacked.py",
    "loop.py",
    "results.py",
    "flops.py",
    "continuation.py",
    "../assembly/parts.py",
    "../assembly/network.py",
    "display.py",
    "epoch_order.py",
)
#: What may be read off the config below the resolution: the record compared with a saved one.
RECORD_READS = {"comparable"}


def test_a_config_is_resolved_into_the_parts_of_its_run(small_config):
    config = small_config(
        "model.lr_scale=0.1",
        "train.lr=0.01",
        "train.lr_milestones=[2, 4]",
        "train.threads=1",
        "data.augment.mean=[0.5]",
        "data.augment.std=[0.25]",
        "soft_warmup=3",
        method={"name": "label_embedding"},
    )
    plan = resolve(config)
    assert (plan.seed, plan.selection, plan.folder.path) == (config.seed, "best_dev", config.run_dir())
    assert (plan.placement.device, plan.placement.threads) == ("auto", 1)
    assert plan.data.name == "digits" and plan.data.request.sections == config.data_sections()
    assert plan.backbone.name == "mlp" and plan.backbone.options == config.options("model")
    assert plan.method.options == {"soft_warmup": 3} and "total_updates" in plan.method.told
    assert plan.optimiser.backbone_lr() == pytest.approx(0.001)
    assert plan.optimiser.at(0.1).backbone_lr() == pytest.approx(0.01)  # the scale follows the rate
    assert plan.optimiser.milestones == (2, 4)
    assert plan.steps.augment == Augment(mean=(0.5,), std=(0.25,))
    assert plan.timing.total_updates(1000) == 10 * config.train.epochs
    assert plan.features is None and plan.early_stopping is None


def test_resolve_refuses_a_wrong_config_before_any_data_is_read(small_config, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(DataSource, "load", no_data)
    with pytest.raises(ConfigError, match="has no option"):
        resolve(small_config("model.hiden=[8]"))
    beyond = f"cuda:{torch.cuda.device_count() + 3}"
    with pytest.raises(ConfigError, match=beyond):
        resolve(small_config(f"train.device={beyond}"))
    # Devices checked by the machines that train the runs (a Ray cluster's): not here.
    assert resolve(small_config(f"train.device={beyond}"), devices_here=False).placement.device == beyond


def test_a_plan_of_a_frozen_backbone_holds_how_its_features_are_computed(small_config):
    plan = plan_run(small_config("model.freeze=true", "train.eval_batch_size=64"))
    assert plan.features is not None and plan.steps.frozen
    assert (plan.features.backbone, plan.features.batch_size) == (plan.backbone, 64)


def test_below_the_plan_nothing_takes_a_config_apart():
    reads = []
    for name in BELOW:
        tree = ast.parse((TRAIN / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _names_a_config(node.value)
                and node.attr not in RECORD_READS
            ):
                reads.append(f"training/{name}:{node.lineno}: .{node.attr} of a config")
            if (
                isinstance(node, ast.arg)
                and node.annotation is not None
                and "RunConfig" in ast.unparse(node.annotation)
            ):
                reads.append(f"training/{name}:{node.lineno}: {node.arg} takes a RunConfig")
    assert reads == []


def _names_a_config(node: ast.expr) -> bool:
    """``config``, ``configs[0]``, ``run.config``, ``plan.config``: the config itself."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id in ("config", "configs")
    return isinstance(node, ast.Attribute) and node.attr == "config"
