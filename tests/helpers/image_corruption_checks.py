"""Hand-made images and the checks every image corruption must pass (labelemb.data.corruptions):
the contract of ``corrupt`` (shape, float32, [0, 1], 8-bit levels) and its determinism (two calls,
one or two torch threads, the batch around an example)."""

from __future__ import annotations

import numpy as np
import torch

from labelemb.data.corruptions import corrupt


def grey_bars() -> torch.Tensor:
    """Two 28x28 grey images (N, 1, H, W): a black background with a bright vertical bar, and a
    dim ramp with a horizontal one, like a digit's strokes."""
    first = torch.zeros(28, 28)
    first[6:22, 12:16] = 1.0
    second = torch.linspace(0.0, 0.3, 28).repeat(28, 1)
    second[13:16, 4:24] = 0.8
    return torch.stack([first, second]).unsqueeze(1)


def colour_images() -> torch.Tensor:
    """Two 32x32 colour images (N, 3, H, W): smooth colour gradients, one with a white square."""
    rows, columns = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    first = torch.stack([rows, columns, 1 - rows]) * 0.8
    second = torch.stack([0.2 + 0.5 * columns, 0.6 - 0.4 * rows, 0.3 * rows * columns])
    second[:, 10:20, 10:20] = 1.0
    return torch.stack([first, second])


def corrupt_in_threads(images: torch.Tensor, name: str, threads: int, severity: int | None) -> torch.Tensor:
    """``corrupt`` run with torch set to ``threads`` threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return corrupt(images, name, severity)
    finally:
        torch.set_num_threads(before)


def check_image_corruption(images: torch.Tensor, name: str, severity: int | None = None) -> torch.Tensor:
    """``corrupt(images, name, severity)`` after checking what every corruption keeps: the shape,
    float32, [0, 1], 8-bit levels, the same bytes on a second call and at one or two threads, and
    each example's result whatever the others in its batch are (``images`` holds at least two)."""
    out = corrupt(images, name, severity)
    assert out.shape == images.shape, f"{name}: shape {tuple(out.shape)} from {tuple(images.shape)}"
    assert out.dtype == torch.float32, f"{name}: dtype {out.dtype}"
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0, f"{name}: values outside [0, 1]"
    levels = out.double() * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4), f"{name}: values off the 8-bit levels"
    again = corrupt(images, name, severity)
    assert out.numpy().tobytes() == again.numpy().tobytes(), f"{name}: a second call differs"
    one, two = (corrupt_in_threads(images, name, threads, severity) for threads in (1, 2))
    assert one.numpy().tobytes() == two.numpy().tobytes(), f"{name}: one and two threads differ"
    assert one.numpy().tobytes() == out.numpy().tobytes(), f"{name}: differs at one thread"
    others = images.clone()
    others[0] = 1.0 - others[0]
    beside_others = corrupt(others, name, severity)
    assert torch.equal(beside_others[1:], out[1:]), f"{name}: an example depends on the others in its batch"
    return out


def as_image(tensor: torch.Tensor) -> np.ndarray:
    """One (C, H, W) tensor as the (H, W, C) float64 array a transform reads."""
    return tensor.permute(1, 2, 0).double().numpy().copy()
