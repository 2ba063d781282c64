"""Training: configs, the one loop, its layouts (one run, stacked seeds, torchrun) and tasks."""

from ..rundir import RunDirError
from .build import Network, build_network, make_optimizer
from .config import ConfigError, RunConfig, build_config, load_config
from .loop import Progress
from .seed import epoch_permutation, seed_everything
from .stacked import BatchedConfigError, supports_batched, unsupported_reason
from .task import Classification, Task
from .trainer import train, train_batched, train_seeds

__all__ = [
    "BatchedConfigError",
    "Classification",
    "ConfigError",
    "Network",
    "Progress",
    "RunConfig",
    "RunDirError",
    "Task",
    "build_config",
    "build_network",
    "epoch_permutation",
    "load_config",
    "make_optimizer",
    "seed_everything",
    "supports_batched",
    "train",
    "train_batched",
    "train_seeds",
    "unsupported_reason",
]
