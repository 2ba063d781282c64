"""Tests of labelemb.models.resnet: the released CIFAR ResNet-8 and ResNet-18 (DESIGN.md).

Full-width networks are only built for shapes and parameter counts; behaviour is tested on narrow
ones (a few channels), which run the same code in a fraction of the time.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labelemb.data import Dataset, Split
from labelemb.models import ResNet, ResNet8, ResNet18, build_model
from labelemb.models.resnet import BasicBlock
from labelemb.training import build_config, build_network

pytestmark = pytest.mark.usefixtures("one_thread")

NARROW = {"channels": (4, 8, 16)}


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k  # no bias: BatchNorm follows


def bn(c: int) -> int:
    return 2 * c  # weight and bias


def resnet_params(channels: tuple[int, ...], blocks: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Parameter count of the released CIFAR ResNet, by hand."""
    total = conv(3, channels[0], 3) + bn(channels[0])
    width = channels[0]
    for c, n, s in zip(channels, blocks, strides):
        for j in range(n):
            total += conv(width, c, 3) + bn(c) + conv(c, c, 3) + bn(c)
            if j == 0 and (s != 1 or width != c):
                total += conv(width, c, 1) + bn(c)
            width = c
    return total


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet8_shape_and_parameters() -> None:
    torch.manual_seed(0)
    model = ResNet8((3, 32, 32)).eval()
    assert model.out_features == 2048 and model.output_init_std is None
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 2048)
    stem = 3 * 128 * 9 + 2 * 128
    block1 = 2 * (128 * 128 * 9 + 2 * 128)  # identity shortcut
    block2 = 128 * 256 * 9 + 256 * 256 * 9 + 2 * 2 * 256 + 128 * 256 + 2 * 256
    block3 = 256 * 512 * 9 + 512 * 512 * 9 + 2 * 2 * 512 + 256 * 512 + 2 * 512
    assert n_params(model) == stem + block1 + block2 + block3 == 4_891_264
    assert n_params(model) == resnet_params((128, 256, 512), (1, 1, 1), (1, 2, 2))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert [isinstance(b.shortcut, nn.Identity) for b in blocks] == [True, False, False]
    assert [b.conv1.stride for b in blocks] == [(1, 1), (2, 2), (2, 2)]


def test_resnet18_shape_and_parameters() -> None:
    torch.manual_seed(0)
    model = ResNet18((3, 32, 32)).eval()
    assert model.out_features == 1024 and model.output_init_std is None
    assert n_params(model) == resnet_params((128, 256, 512, 1024), (2, 2, 2, 2), (1, 2, 2, 2))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8 and sum(not isinstance(b.shortcut, nn.Identity) for b in blocks) == 3
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1024)


def test_init_is_kaiming_and_bn_identity() -> None:
    torch.manual_seed(0)
    model = ResNet8((3, 32, 32))
    conv3 = model.stages[2][0].conv2  # 512 -> 512, 3x3: fan_out = 512 * 9
    assert conv3.weight.std().item() == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.02)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert bool((m.weight == 1).all()) and bool((m.bias == 0).all())


def test_forward_backward_batch_of_two() -> None:
    torch.manual_seed(0)
    model = ResNet8((3, 32, 32), **NARROW)
    assert model.out_features == 16 * 2 * 2
    features = model(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, 64) and bool((features >= 0).all())  # avg of ReLUs
    features.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


def test_batchnorm_train_and_eval() -> None:
    torch.manual_seed(0)
    model = ResNet18((3, 32, 32), channels=(4, 4, 8, 8))
    x = torch.rand(4, 3, 32, 32)
    bn0 = model.stem[1]
    before = bn0.running_mean.clone()
    model.train()
    with torch.no_grad():
        full = model(x)
        half = model(x[:2])
    # Train mode normalises with the batch's statistics: an image's features depend on the batch.
    assert not torch.allclose(full[:2], half, atol=1e-5)
    assert not torch.equal(bn0.running_mean, before)
    model.eval()
    running = bn0.running_mean.clone()
    with torch.no_grad():
        full = model(x)
        half = model(x[:2])
    # Eval mode uses the running statistics: per-image, and they are not updated.
    torch.testing.assert_close(full[:2], half, rtol=1e-4, atol=1e-5)
    assert torch.equal(bn0.running_mean, running)


@pytest.mark.parametrize("train", [False, True])
def test_channels_last_matches_contiguous(train: bool) -> None:
    # torch 2.13's oneDNN backward of these strided channels_last convolutions crashes the process
    # now and then (segfault, abort or hang) on an AMD EPYC host without AVX-512; channels_last is a
    # CUDA speed-up, so the CPU check runs on PyTorch's own kernels.
    with torch.backends.mkldnn.flags(enabled=False):
        torch.manual_seed(0)
        model = ResNet8((3, 32, 32), **NARROW).train(train)
        x = torch.rand(3, 3, 32, 32)
        expected = model(x)
        last = model.to(memory_format=torch.channels_last)
        x_last = x.to(memory_format=torch.channels_last)
        assert x_last.is_contiguous(memory_format=torch.channels_last) and not x_last.is_contiguous()
        got = last(x_last)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        got.sum().backward()


def test_other_sizes_and_bad_options() -> None:
    model = ResNet((3, 28, 28), channels=(4, 8), blocks=(1, 1), strides=(1, 2))
    assert model.out_features == 8 * 3 * 3  # 28 -> 14, pooled by 4 -> 3
    assert model(torch.rand(2, 3, 28, 28)).shape == (2, 72)
    with pytest.raises(ValueError, match="one entry per stage"):
        ResNet8((3, 32, 32), channels=(4, 8))
    with pytest.raises(ValueError, match="smaller than the pooling window"):
        ResNet18((3, 8, 8))
    with pytest.raises(ValueError, match="positive"):
        ResNet8((3, 32, 32), strides=(1, 0, 2))


def test_registry_and_trainer_wiring() -> None:
    model = build_model("resnet8", (3, 32, 32), channels=[4, 8, 16])
    assert isinstance(model, ResNet8) and model.out_features == 64
    assert isinstance(build_model("resnet18", (3, 32, 32), channels=[2, 2, 2, 2]), ResNet18)
    with pytest.raises(ValueError, match=r"model 'resnet8' has no option\(s\) width.*channels"):
        build_model("resnet8", (3, 32, 32), width=2)
    images, labels = torch.rand(4, 3, 32, 32), torch.arange(4) % 10
    dataset = Dataset(
        "fake", Split(images, labels), None, Split(images, labels), [f"c{i}" for i in range(10)]
    )
    config = build_config(
        {"model": {"name": "resnet8", "channels": [4, 8, 16]}, "method": {"name": "label_embedding"}}
    )
    model, method = build_network(config, dataset)
    assert method.in_features == 64 and method.num_classes == 10
    out = method(model(images), labels)
    out.loss.backward()
