"""Tests of labelemb.models.custom: ``model.name: custom`` builds the network a user's function
returns (``model.factory: package.module:function``, ``model.options``: its keyword arguments).

The user's code is a small module each test writes into its tmp_path and puts on the Python path,
as a user's own package would be: the factories below, and modules that fail as users' do.
"""

from __future__ import annotations

import json
import math
import sys
import textwrap

import pytest
import torch
from torch import nn

from labelemb.models import build_model, model_options
from labelemb.models.custom import CustomBackbone
from labelemb.training import build_config, build_network, train

pytestmark = pytest.mark.usefixtures("one_thread")

USER_MODULE = "user_backbones"
USER_CODE = '''
"""A user's backbones, and factories that go wrong."""
import torch
from torch import nn


def small_cnn(channels: int = 4, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, width),
        nn.ReLU(),
    )


class Builders:
    @staticmethod
    def linear(width: int = 5) -> nn.Module:
        net = nn.Sequential(nn.Flatten(), nn.LazyLinear(width))
        net.output_init_std = 0.01
        return net


def no_pooling() -> nn.Module:
    return nn.Conv2d(1, 3, 3)


def batch_mean() -> nn.Module:
    class BatchMean(nn.Module):
        def forward(self, images):
            return images.flatten(1).mean(0, keepdim=True)
    return BatchMean()


def one_number_each() -> nn.Module:
    class Sum(nn.Module):
        def forward(self, images):
            return images.flatten(1).sum(1)
    return Sum()


def pair() -> nn.Module:
    class Pair(nn.Module):
        def forward(self, images):
            flat = images.flatten(1)
            return flat, flat
    return Pair()


def not_a_module():
    return torch.zeros(3)


def raises(width: int = 3) -> nn.Module:
    raise RuntimeError(f"no GPU for width {width}\\nsecond line")


def three_channels() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())


NOT_CALLABLE = 42
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``user_backbones`` (the factories above) and ``user_broken`` (an import that fails) on the
    Python path, forgotten again after the test."""
    (tmp_path / f"{USER_MODULE}.py").write_text(textwrap.dedent(USER_CODE))
    (tmp_path / "user_broken.py").write_text("import a_package_nobody_installed\n")
    (tmp_path / "user_crashing.py").write_text("raise RuntimeError('configuration file not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in (USER_MODULE, "user_broken", "user_crashing"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield USER_MODULE
    for name in (USER_MODULE, "user_broken", "user_crashing"):
        sys.modules.pop(name, None)


# ---------------------------------------------------------------- building


def test_the_factorys_network_with_its_options(user_module):
    model = build_model("custom", (1, 8, 8), factory=f"{user_module}:small_cnn", options={"width": 7})
    assert isinstance(model, CustomBackbone)
    assert model.out_features == 7
    assert model.output_init_std is None
    assert model.training  # the dry run left the mode as it was
    assert model.network[1].num_batches_tracked.item() == 0  # it ran in eval mode
    images = torch.rand(5, 1, 8, 8)
    features = model(images)
    assert features.shape == (5, 7)
    assert torch.equal(features, model.network(images))
    assert list(model.state_dict())[0] == "network.0.weight"
    assert model_options("custom") == {"factory": None, "options": None}


def test_a_dotted_path_after_the_colon_and_the_networks_own_output_std(user_module):
    model = build_model("custom", (1, 4, 6), factory=f"{user_module}:Builders.linear")
    assert model.out_features == 5
    assert model.output_init_std == 0.01
    assert model.network[1].weight.shape == (5, 24)  # the lazy layer met its input in the dry run


def test_build_network_puts_the_methods_head_on_the_features(user_module, digits):
    config = build_config(
        {
            "model": {"name": "custom", "factory": f"{user_module}:small_cnn", "options": {"width": 9}},
            "method": {"name": "label_embedding"},
        }
    )
    model, method = build_network(config, digits)
    assert method.in_features == 9 and method.num_classes == 10


# ---------------------------------------------------------------- errors, one line each


def build_error(factory: str | None, shape: tuple[int, ...] = (1, 8, 8), **options: object) -> str:
    """The one-line message of the ValueError that building ``factory`` raises."""
    with pytest.raises(ValueError) as error:
        build_model("custom", shape, factory=factory, options=options or None)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("spec", ["user_backbones.small_cnn", "user_backbones:", ":small_cnn"])
def test_a_factory_not_of_the_module_colon_function_form(user_module, spec):
    message = build_error(spec)
    assert f"model.factory {spec!r} is not of the form 'package.module:function'" in message


def test_a_factory_whose_module_is_not_there(user_module):
    message = build_error("no_such_package.nets:small_cnn")
    assert "model.factory 'no_such_package.nets:small_cnn'" in message
    assert "there is no module 'no_such_package.nets' to import" in message
    assert "keep it beside the config file or put its folder on the Python path (PYTHONPATH=" in message


def test_a_factory_whose_module_fails_to_import(user_module):
    message = build_error("user_broken:build")
    assert message.startswith("model.factory 'user_broken:build': importing 'user_broken' failed")
    assert "No module named 'a_package_nobody_installed'" in message
    message = build_error("user_crashing:build")
    assert "importing 'user_crashing' failed: RuntimeError: configuration file not found" in message


def test_a_factory_the_module_does_not_have(user_module):
    message = build_error(f"{user_module}:big_cnn")
    assert message == f"model.factory '{user_module}:big_cnn': module '{user_module}' has no 'big_cnn'"
    message = build_error(f"{user_module}:Builders.conv")
    assert f"module '{user_module}' has no 'Builders.conv'" in message
    message = build_error(f"{user_module}:NOT_CALLABLE")
    assert "names a int, not a function to call" in message


def test_a_factory_that_raises(user_module):
    message = build_error(f"{user_module}:raises", width=5)
    assert message == f"model.factory '{user_module}:raises' raised RuntimeError: no GPU for width 5"
    message = build_error(f"{user_module}:small_cnn", depth=3)
    assert f"model.factory '{user_module}:small_cnn' raised TypeError" in message
    assert "depth" in message


def test_a_factory_that_returns_something_else(user_module):
    message = build_error(f"{user_module}:not_a_module")
    assert f"model.factory '{user_module}:not_a_module' returned a Tensor, not a torch.nn.Module" in message


@pytest.mark.parametrize(
    ("factory", "returned"),
    [("no_pooling", "(2, 3, 6, 6)"), ("batch_mean", "(1, 64)"), ("one_number_each", "(2,)")],
)
def test_a_network_whose_output_is_not_n_by_d(user_module, factory, returned):
    message = build_error(f"{user_module}:{factory}")
    assert message.startswith(
        f"model.factory '{user_module}:{factory}': its network returned shape {returned}"
    )
    assert "for a batch of shape (2, 1, 8, 8), not features (N, d)" in message
    assert "nn.AdaptiveAvgPool2d(1)) and nn.Flatten()" in message


def test_a_network_that_returns_no_tensor_or_fails_on_the_inputs(user_module):
    message = build_error(f"{user_module}:pair")
    assert "its network returned a tuple for a batch of shape (2, 1, 8, 8), not a tensor" in message
    message = build_error(f"{user_module}:three_channels")
    assert f"model.factory '{user_module}:three_channels': its network failed on a batch of shape" in message
    assert "RuntimeError" in message


def test_no_factory_or_options_that_are_not_a_mapping(user_module):
    assert "model custom needs model.factory" in build_error(None)
    with pytest.raises(ValueError, match="model.options must be a mapping"):
        CustomBackbone((1, 8, 8), factory=f"{user_module}:small_cnn", options=[4])


# ---------------------------------------------------------------- training


def test_a_custom_backbone_trains_on_digits(user_module, tmp_path, digits):
    config = build_config(
        {
            "experiment": "custom",
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "digits"},
            "model": {"name": "custom", "factory": f"{user_module}:small_cnn", "options": {"channels": 6}},
            "method": {"name": "label_embedding"},
            "train": {"epochs": 1, "batch_size": 100, "max_steps": 4, "progress": False},
        }
    )
    summary = train(config, dataset=digits)
    run_dir = config.run_dir()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 4
    assert math.isfinite(records[-1]["train_loss"])
    assert 0 <= records[-1]["test_error"] <= 100
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    weights = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    assert weights["model.network.0.weight"].shape == (6, 1, 3, 3)
    assert isinstance(build_model("custom", (1, 8, 8), factory=f"{user_module}:small_cnn"), nn.Module)


def test_a_factory_beside_the_config_file_imports_from_anywhere(tmp_path, monkeypatch, digits):
    """``labelemb train --config project/run.yaml`` with ``factory: project_nets:small_cnn`` and
    ``project_nets.py`` beside run.yaml, run from another folder: the config's folder is searched."""
    from labelemb.config import load_config

    project = tmp_path / "project"
    project.mkdir()
    (project / "project_nets.py").write_text(textwrap.dedent(USER_CODE))
    (project / "run.yaml").write_text(
        "experiment: beside\n"
        f"output_dir: {tmp_path / 'runs'}\n"
        "data: {name: digits}\n"
        "model: {name: custom, factory: 'project_nets:small_cnn'}\n"
        "train: {epochs: 1, max_steps: 2, progress: false}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "project_nets", raising=False)
    path_before = list(sys.path)
    summary = train(load_config(project / "run.yaml"), dataset=digits)
    assert summary["steps"] == 2
    assert sys.path == path_before  # the folder was on the path only while the backbone was built
    sys.modules.pop("project_nets", None)
