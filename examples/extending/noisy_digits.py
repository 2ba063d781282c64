"""Extending labelemb, example 1: a data set with an option of its own.

``noisy-digits`` is the built-in 8x8 digits with Gaussian noise of strength ``noise`` added to every
pixel (then clipped to [0, 1]), the same noise for every run of the same options. Its options are
a schema (an ``Options`` subclass) registered beside the loader, so the config's ``data`` section
``noisy_digits`` is checked against it before any data is read, with a did-you-mean for a
misspelt key::

    data:
      name: noisy-digits
      noisy_digits: {noise: 0.3}

Import this module before building a config that names it (``import noisy_digits``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from labelemb import data
from labelemb.data import DataRequest, Dataset, Split, load_digits
from labelemb.options import Options


class NoisyDigitsOptions(Options):
    """The ``data.noisy_digits`` section: how much noise, and which draw of it."""

    section: ClassVar[str] = "noisy_digits"

    #: Standard deviation of the noise added to each pixel (pixels lie in [0, 1]).
    noise: float = Field(0.1, ge=0.0, le=1.0)
    #: Seed of the noise: the same options give the same noisy images in every run.
    noise_seed: int = 0


@data.register("noisy-digits", yields="images", options=(NoisyDigitsOptions,))
def load_noisy_digits(request: DataRequest) -> Dataset:
    options = request.options(NoisyDigitsOptions)  # checked: 0 <= noise <= 1
    digits = load_digits()
    generator = torch.Generator().manual_seed(options.noise_seed)

    def noisy(split: Split) -> Split:
        noise = options.noise * torch.randn(split.inputs.shape, generator=generator)
        return Split((split.inputs + noise).clamp(0.0, 1.0), split.labels)

    return Dataset(
        name="noisy-digits",
        train=noisy(digits.train),
        dev=noisy(digits.dev),
        test=noisy(digits.test),
        class_names=digits.class_names,
        details={"noise": options.noise, "noise_seed": options.noise_seed},  # kept in summary.json
    ).limited(request.max_train_pairs)
