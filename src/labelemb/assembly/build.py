"""A run's pieces straight from its config, for those that hold a config rather than a plan:
prediction and analysis rebuilding a finished run (its network, its data), benches and tests.

Each takes the part it needs of the config as a run's resolution does (:mod:`labelemb.assembly.plan`)
and makes its piece with it (:mod:`labelemb.assembly.parts`); training itself builds from its plan.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .. import methods
from ..config import RunConfig
from ..data import Dataset
from ..data.registry import DataRequest
from ..data.text.sequences import TextDataset
from .network import Network, StepOptions, run_model
from .parts import build_pair
from .plan import backbone_of, data_of, method_of, optimiser_of, steps_of

__all__ = [
    "Network",
    "build_network",
    "data_request",
    "load_run_data",
    "make_optimizer",
    "parameter_groups",
    "run_model",
    "step_options",
]


def load_run_data(config: RunConfig) -> Dataset | TextDataset:
    """The data set a config names, as its run reads it (:func:`data_request`)."""
    return data_of(config).load()


def data_request(config: RunConfig) -> DataRequest:
    """What a config asks of its data (:func:`~labelemb.assembly.plan.data_of`)."""
    return data_of(config).request


def build_network(config: RunConfig, dataset: Dataset | TextDataset) -> tuple[nn.Module, methods.Method]:
    """The backbone and the method of a run; the released output-layer init unless set."""
    return build_pair(backbone_of(config), method_of(config), dataset)


def parameter_groups(config: RunConfig, named: Iterable[tuple[str, Tensor]]) -> list[Any]:
    """What the optimiser of a run updates (:meth:`~labelemb.assembly.parts.Optimiser.groups`)."""
    return optimiser_of(config).groups(named)


def make_optimizer(config: RunConfig, parameters: list[Any]) -> torch.optim.Adam:
    """Adam as ``train.adam`` asks (:meth:`~labelemb.assembly.parts.Optimiser.make`)."""
    return optimiser_of(config).make(parameters)


def step_options(config: RunConfig, seed: int) -> StepOptions:
    """The batch pipeline a config asks for; the augmentation generator is seeded by the run."""
    return steps_of(config).options(seed)
