"""Assembly: what turns a run's config into its pieces, in one room between config/ and training/.

The one entry is :func:`resolve` (config -> :class:`RunPlan`, checked; :func:`plan_run` without the
checks): the plan holds the run's typed parts (:mod:`labelemb.assembly.parts`), each of which makes
its piece: the network and the method (:func:`~labelemb.assembly.parts.build_pair`,
:class:`Network`), the data (:class:`~labelemb.assembly.parts.DataSource`), Adam and its schedule
(:class:`~labelemb.assembly.parts.Optimiser`), the batch pipeline (:class:`StepOptions`) and a frozen
backbone's features (:mod:`labelemb.assembly.frozen`). Those who hold a config rather than a plan
(prediction, analysis, tuning, benches) build a finished run's pieces with :mod:`labelemb.assembly.build`.
training/ trains what this room assembles; nothing here trains.
"""

from .build import build_network, data_request, load_run_data, make_optimizer, parameter_groups, step_options
from .frozen import FeatureDataset, freeze_features, frozen_backbone
from .network import Network, StepOptions, run_model
from .parts import recorded_noise_context, resolve_device
from .plan import RunPlan, data_of, plan_run, resolve

__all__ = [
    "recorded_noise_context",
    "FeatureDataset",
    "Network",
    "RunPlan",
    "StepOptions",
    "build_network",
    "data_of",
    "data_request",
    "freeze_features",
    "frozen_backbone",
    "load_run_data",
    "make_optimizer",
    "parameter_groups",
    "plan_run",
    "resolve",
    "resolve_device",
    "run_model",
    "step_options",
]
