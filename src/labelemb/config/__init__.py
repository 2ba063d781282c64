"""The config language, one door: what a run's config holds (:class:`RunConfig`, its sections), how
it is read (a YAML file, ``key=value`` overrides) and how it is checked against the registries
(:func:`build_config`, :func:`load_config`), each mistake one :class:`ConfigError` line. The rest
of labelemb imports these names from here, never from the modules behind them."""

from .checks import (
    RUN_CONTEXT_OPTIONS,
    build_config,
    check_buildable,
    load_config,
    method_overrides,
    no_method_takes,
    option_list,
    option_targets,
)
from .clean_step import CleanStep
from .extras import check_extras
from .reading import described_ranges, parse_override, read_config_file, with_settings
from .schema import (
    AugmentConfig,
    ConfigError,
    DataConfig,
    EarlyStoppingConfig,
    MethodConfig,
    ModelConfig,
    OodSetConfig,
    RunConfig,
    TrainConfig,
    config_keys,
    top_level_keys,
)

__all__ = [
    "RUN_CONTEXT_OPTIONS",
    "AugmentConfig",
    "CleanStep",
    "ConfigError",
    "DataConfig",
    "EarlyStoppingConfig",
    "MethodConfig",
    "ModelConfig",
    "OodSetConfig",
    "RunConfig",
    "TrainConfig",
    "build_config",
    "check_buildable",
    "check_extras",
    "config_keys",
    "described_ranges",
    "load_config",
    "method_overrides",
    "option_list",
    "option_targets",
    "no_method_takes",
    "parse_override",
    "read_config_file",
    "top_level_keys",
    "with_settings",
]
