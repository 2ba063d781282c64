"""Images of a known geometry, and measures of what a corruption did to them, for the tests of
labelemb.data.corruptions (``from corruption_measures import bar_image``; tests/ is on the path).
What every corruption must keep (shape, range, 8-bit levels, determinism) is checked by
image_corruption_checks.check_image_corruption.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from helpers.image_corruption_checks import colour_images, grey_bars
from labelemb.data.corruptions import corrupt, corruption


def bar_image(height: int = 28, width: int = 28) -> torch.Tensor:
    """One grey image (1, 1, height, width): a bright vertical bar right of and above the centre,
    a quarter of the side tall and a seventh wide, wholly inside the centred inscribed circle."""
    image = torch.zeros(1, 1, height, width)
    rows = slice(height * 5 // 28, height * 12 // 28)
    columns = slice(width * 16 // 28, width * 20 // 28)
    image[0, 0, rows, columns] = 1.0
    return image


#: A test of every kind of batch a corruption must handle: grey 28x28, colour 32x32, grey 20x36.
EVERY_KIND = pytest.mark.parametrize(
    "images",
    [grey_bars(), colour_images(), torch.cat([bar_image(20, 36)] * 2)],
    ids=["grey", "colour", "oblong"],
)


def mass_centre(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The (row, column) centre of mass of a 2-D image, measured from the image's centre."""
    pixels = np.asarray(image, dtype=np.float64)
    rows, columns = np.indices(pixels.shape)
    centre = (np.array(pixels.shape) - 1) / 2
    return np.array([(rows * pixels).sum(), (columns * pixels).sum()]) / pixels.sum() - centre


def assert_stronger_with_severity(
    name: str,
    images: torch.Tensor,
    change: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
) -> list[float]:
    """``change(images, corrupted)`` (by default the mean absolute difference) grows strictly from
    each severity of ``name`` to the next; returns it at each."""
    measure = change or (lambda clean, corrupted: float((corrupted - clean).abs().mean()))
    changes = [measure(images, corrupt(images, name, severity)) for severity in corruption(name).severities()]
    stronger = all(a < b for a, b in zip(changes, changes[1:]))
    assert stronger, f"{name} is not stronger at each severity: {changes}"
    return changes
