"""Training: the one loop and its layouts (one run, stacked seeds, torchrun); nothing else."""

from ..config import ConfigError, RunConfig, build_config, load_config
from ..rundir import RunDirError
from ..tasks import Classification, Task
from .batching import BatchedConfigError, supports_batched, unsupported_reason
from .build import Network, build_network, make_optimizer
from .seed import epoch_permutation, seed_everything
from .seed_run import Progress
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
