"""Noisy training labels: generated (symmetric, pair-flip, a transition matrix, instance-dependent;
tags removed from tag sets), read from a file of fixed noisy labels, or carried by the data itself
beside its clean labels.

The config's ``noise:`` section (:class:`NoiseConfig`) says which; :func:`add_label_noise` applies it
to a loaded data set and keeps the clean labels beside the noisy ones (:class:`NoisyLabels`).
"""

from .noisy import NoisyLabels, NoisyTags, add_label_noise
from .options import NoiseConfig
from .transitions import NoiseError, pairflip_matrix, realised_matrix, symmetric_matrix

__all__ = [
    "NoiseConfig",
    "NoiseError",
    "NoisyLabels",
    "NoisyTags",
    "add_label_noise",
    "pairflip_matrix",
    "realised_matrix",
    "symmetric_matrix",
]
