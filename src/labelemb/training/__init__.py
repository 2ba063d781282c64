"""Training: the one loop and its layouts (one run, stacked seeds, torchrun); nothing else.

This package's door: what those above it (predict/, tuning/, analysis/, sweep/, cli/) may use of
training; its modules are its own. A run's pieces are assembled in :mod:`labelemb.assembly`."""

from ..assembly.build import Network, build_network, make_optimizer
from ..assembly.parts import seed_everything
from ..config import ConfigError, RunConfig, build_config, load_config
from ..data.base import epoch_permutation
from ..rundir import RunDirError
from ..tasks import Classification, Task
from .batched import BatchedConfigError, stacking_key, supports_batched, unsupported_reason
from .display import describe_seeds
from .distributed import init_from_environment, shutdown
from .dynamics import dynamics_of, recording_dynamics
from .seed_run import Progress
from .threads import same_numbers_at_any_thread_count, use_free_cores_when_training
from .trainer import RunHeld, build_run, plan_runs, train

__all__ = [
    "BatchedConfigError",
    "Classification",
    "ConfigError",
    "Network",
    "Progress",
    "RunConfig",
    "RunDirError",
    "RunHeld",
    "Task",
    "build_config",
    "build_network",
    "build_run",
    "describe_seeds",
    "dynamics_of",
    "epoch_permutation",
    "init_from_environment",
    "load_config",
    "make_optimizer",
    "plan_runs",
    "recording_dynamics",
    "same_numbers_at_any_thread_count",
    "seed_everything",
    "shutdown",
    "stacking_key",
    "supports_batched",
    "train",
    "unsupported_reason",
    "use_free_cores_when_training",
]
