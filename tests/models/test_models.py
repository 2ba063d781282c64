"""Tests of labelemb.models (the paper's MLP and CNN) and of the output-layer init the trainer gives."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labelemb import models
from labelemb.data import Dataset, Split
from labelemb.models import CNN, MLP, build_model
from labelemb.training import build_config, build_network

pytestmark = pytest.mark.usefixtures("one_thread")

# std of a normal(0, s) truncated at +-2s is s * TRUNC_FACTOR.
TRUNC_FACTOR = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def assert_truncated(weight: torch.Tensor, std: float, rel: float = 0.05) -> None:
    """Weights drawn from normal(0, std) truncated at two standard deviations."""
    weight = weight.detach()
    assert weight.abs().max() <= 2 * std + 1e-9
    assert weight.abs().max() > 1.8 * std  # it reaches near the bound: not a narrower distribution
    assert weight.std().item() == pytest.approx(std * TRUNC_FACTOR, rel=rel)
    assert abs(weight.mean().item()) < 0.05 * std


def fake_dataset(shape: tuple[int, ...], num_classes: int = 10) -> Dataset:
    images = torch.rand(4, *shape)
    labels = torch.arange(4) % num_classes
    return Dataset(
        name="fake",
        train=Split(images, labels),
        dev=None,
        test=Split(images.clone(), labels.clone()),
        class_names=[f"c{i}" for i in range(num_classes)],
    )


# ---------------------------------------------------------------- MLP


def test_mlp_is_the_papers_784_500_500_network():
    torch.manual_seed(0)
    mlp = MLP((1, 28, 28))
    layers = linears(mlp)
    assert [(layer.in_features, layer.out_features) for layer in layers] == [(784, 500), (500, 500)]
    assert mlp.out_features == 500
    assert mlp.output_init_std == 0.01
    for layer in layers:
        assert_truncated(layer.weight, 0.1)
        assert torch.count_nonzero(layer.bias) == 0
    features = mlp(torch.rand(3, 1, 28, 28))
    assert features.shape == (3, 500)
    assert (features >= 0).all()  # ends in a ReLU
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 500 + 500 + 500 * 500 + 500


def test_mlp_options_and_flattening():
    mlp = build_model("mlp", (1, 8, 8), hidden=[16, 8], init_std=0.05)
    assert [(layer.in_features, layer.out_features) for layer in linears(mlp)] == [(64, 16), (16, 8)]
    assert mlp.out_features == 8
    assert mlp(torch.rand(2, 1, 8, 8)).shape == (2, 8)
    for layer in linears(mlp):
        assert layer.weight.abs().max() <= 0.1 + 1e-9
    with pytest.raises(ValueError, match="at least one hidden layer"):
        MLP((1, 8, 8), hidden=())


# ---------------------------------------------------------------- CNN


def test_cnn_is_the_papers_mnist_network():
    torch.manual_seed(0)
    cnn = CNN((1, 28, 28))
    assert cnn.out_features == 1024
    assert cnn.output_init_std == 0.001
    features = cnn(torch.rand(2, 1, 28, 28))
    assert features.shape == (2, 1024)
    assert (features >= 0).all()
    conv1 = 32 * 1 * 5 * 5 + 32
    conv2 = 64 * 32 * 5 * 5 + 64
    fc = 7 * 7 * 64 * 1024 + 1024
    assert sum(p.numel() for p in cnn.parameters()) == conv1 + conv2 + fc == 3_264_384
    convs = [m for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    shapes = [(c.in_channels, c.out_channels, c.kernel_size) for c in convs]
    assert shapes == [(1, 32, (5, 5)), (32, 64, (5, 5))]
    for layer in [*convs, *linears(cnn)]:
        assert_truncated(layer.weight, 0.1, rel=0.1 if layer is convs[0] else 0.05)
        assert torch.count_nonzero(layer.bias) == 0


def test_cnn_works_on_other_multiples_of_four():
    cnn = build_model("cnn", (3, 8, 12), channels=[4, 8], hidden=16)
    assert cnn(torch.rand(2, 3, 8, 12)).shape == (2, 16)


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 26), (1, 6, 8)])
def test_cnn_rejects_sizes_that_are_not_multiples_of_four(shape):
    with pytest.raises(ValueError, match="multiples of 4") as error:
        CNN(shape)
    assert str(shape) in str(error.value)


# ---------------------------------------------------------------- registry errors


def test_unknown_model_name_lists_the_available_ones():
    assert models.available() == [
        "bag_of_words", "cnn", "custom", "efficientnet_lite0", "mlp", "resnet18", "resnet8",
        "sentence_encoder", "seq2seq", "tfidf",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown model 'resnet9'.*cnn, custom"):
        build_model("resnet9", (1, 28, 28))


def test_unknown_model_option_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"model 'mlp' has no option\(s\) hiden.*hidden"):
        build_model("mlp", (1, 28, 28), hiden=[10])
    with pytest.raises(ValueError, match=r"model 'cnn' has no option\(s\) dropout"):
        build_model("cnn", (1, 28, 28), dropout=0.5)


# ---------------------------------------------------------------- the method's output layers


def test_build_network_gives_label_embedding_heads_the_mlps_output_std():
    torch.manual_seed(0)
    config = build_config({"model": {"name": "mlp", "hidden": [500]}, "method": {"name": "label_embedding"}})
    model, method = build_network(config, fake_dataset((1, 8, 8)))
    assert method.in_features == 500 and method.num_classes == 10
    assert method.heads.weight.shape == (20, 500)  # o1 and o2
    for which in (1, 2):
        weight, bias = method.output_layer(which)
        assert_truncated(weight, 0.01, rel=0.08)
        assert torch.count_nonzero(bias) == 0
    assert torch.equal(method.embedding.detach(), torch.eye(10))


def test_build_network_gives_cnn_output_layers_std_0_001():
    torch.manual_seed(0)
    config = build_config({"model": {"name": "cnn"}, "method": {"name": "onehot"}})
    model, method = build_network(config, fake_dataset((1, 28, 28)))
    assert method.output.weight.shape == (10, 1024)
    assert_truncated(method.output.weight, 0.001, rel=0.08)
    assert torch.count_nonzero(method.output.bias) == 0


def test_an_explicit_method_init_std_wins_over_the_models():
    torch.manual_seed(0)
    config = build_config(
        {"model": {"name": "mlp", "hidden": [500]}, "method": {"name": "label_embedding", "init_std": 0.05}}
    )
    _, method = build_network(config, fake_dataset((1, 8, 8)))
    assert_truncated(method.output_layer(1)[0], 0.05, rel=0.08)
