"""Tests of labelemb.data.augment: batched random crop and flip, normalisation, the Augment transform."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from labelemb.data.augment import (
    CIFAR_MEAN,
    CIFAR_STD,
    Augment,
    crop_offsets,
    flip_mask,
    normalize,
    random_crop,
    random_horizontal_flip,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch(n: int = 8, device: str = "cpu") -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)


def gen(seed: int = 1, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
def test_random_crop_equals_hand_crop(device: str) -> None:
    images = batch(16, device)
    out = random_crop(images, padding=4, generator=gen(3))
    offsets = crop_offsets(16, 4, gen(3))  # the same draws from a generator in the same state
    assert out.shape == images.shape and out.device == images.device
    padded = F.pad(images, (4, 4, 4, 4))
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert 0 <= dy <= 8 and 0 <= dx <= 8
        assert torch.equal(out[i], padded[i, :, dy : dy + 32, dx : dx + 32])
    assert len({tuple(o) for o in offsets.tolist()}) > 1  # each image has its own offset


def test_random_crop_zero_padding_and_content() -> None:
    images = torch.ones(64, 1, 4, 4)
    out = random_crop(images, padding=2, generator=gen(0))
    # Every crop keeps some of the image and fills the rest with zeros.
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert bool((out.sum(dim=(1, 2, 3)) >= 4).all()) and bool((out == 0).any())
    assert random_crop(images, padding=0) is images
    with pytest.raises(ValueError):
        random_crop(images, padding=-1)
    with pytest.raises(ValueError, match="N, C, H, W"):
        random_crop(images[0], padding=1)


@pytest.mark.parametrize("device", DEVICES)
def test_flip_flips_exactly_the_chosen_images(device: str) -> None:
    images = batch(32, device)
    out = random_horizontal_flip(images, generator=gen(5))
    mask = flip_mask(32, 0.5, gen(5))
    assert 0 < int(mask.sum()) < 32
    for i, flipped in enumerate(mask.tolist()):
        expected = images[i].flip(-1) if flipped else images[i]
        assert torch.equal(out[i], expected)
    assert torch.equal(random_horizontal_flip(images, gen(5), p=0.0), images)
    assert torch.equal(random_horizontal_flip(images, gen(5), p=1.0), images.flip(-1))


def test_same_seed_same_output() -> None:
    images = batch(8)
    aug = Augment.cifar()
    a, b = aug(images, gen(7)), aug(images, gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(images, gen(8)))
    g = gen(7)
    first, second = aug(images, g), aug(images, g)  # a generator advances: the next batch differs
    assert torch.equal(first, a) and not torch.equal(first, second)


def test_normalize_by_hand() -> None:
    images = batch(4)
    out = normalize(images, CIFAR_MEAN, CIFAR_STD)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (images[:, c] - CIFAR_MEAN[c]) / CIFAR_STD[c])
    assert torch.equal(normalize(images, torch.tensor(CIFAR_MEAN), torch.tensor(CIFAR_STD)), out)
    with pytest.raises(ValueError, match="one value per channel"):
        normalize(images, (0.5,) * 2, (0.5,) * 2)


def test_augment_pipeline() -> None:
    images = batch(8)
    aug = Augment.cifar()
    assert (aug.crop_padding, aug.flip, aug.mean, aug.std) == (4, True, CIFAR_MEAN, CIFAR_STD)
    # Crop, flip, then normalise, drawing in that order from the one generator.
    g = gen(11)
    expected = normalize(random_horizontal_flip(random_crop(images, 4, g), g), CIFAR_MEAN, CIFAR_STD)
    assert torch.equal(aug(images, gen(11)), expected)
    # Evaluation: normalisation only, and the generator is not touched.
    g = gen(11)
    state = g.get_state()
    assert torch.equal(aug(images, g, train=False), normalize(images, CIFAR_MEAN, CIFAR_STD))
    assert torch.equal(g.get_state(), state)
    assert torch.equal(Augment()(images), images)
    assert Augment(mean=[0.5, 0.5, 0.5], std=[0.25] * 3).mean == (0.5, 0.5, 0.5)  # lists from a config
    for bad in (
        dict(crop_padding=-1),
        dict(mean=(0.5,)),
        dict(mean=(0.5,), std=(0.0,)),
        dict(mean=(1, 2), std=(1,)),
    ):
        with pytest.raises(ValueError):
            Augment(**bad)


def test_cpu_generator_with_images_on_the_training_device() -> None:
    """A trainer owns a CPU generator while the data may live on the GPU: the same result as on CPU.

    Runs on CUDA where there is one (the GPU path) and on the CPU otherwise, never skipped."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = batch(8)
    on_cpu = Augment.cifar()(images, gen(2))
    on_device = Augment.cifar()(images.to(device), gen(2))
    assert on_device.device.type == device
    torch.testing.assert_close(on_device.cpu(), on_cpu)


class _CountCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_no_python_loop_over_the_batch() -> None:
    """The number of torch operations does not grow with the batch (no timing: DESIGN.md)."""
    counts = []
    for n in (2, 256):
        images = batch(n)
        with _CountCalls() as mode:
            Augment.cifar()(images, gen(0))
        counts.append(mode.calls)
    assert counts[0] == counts[1] and counts[0] < 100
