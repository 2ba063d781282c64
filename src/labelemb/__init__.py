"""labelemb: training neural networks with learned label representations.

The drop-in module::

    head = labelemb.LabelEmbedding(in_features, num_classes)
    out = head(features, target)
    out.loss.backward()

The whole experiment, one call per command of the ``labelemb`` command line
(:mod:`labelemb.experiment`)::

    result = labelemb.compare("configs/mnist-mlp.yaml", methods=["onehot", "label_embedding"], seeds=range(5))
    print(result.to_markdown())
    labelemb.report(result.experiment_dir)  # its HTML page

Every name here, and every subpackage (``labelemb.experiment``, ``labelemb.training``...), is
reachable from ``import labelemb`` alone (``help(labelemb.experiment.Comparison)``): each is
imported the first time it is named, so the import itself stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from .callbacks import DEFAULTS as _DEFAULT_CALLBACKS
from .steps import STEPS as _CONFIG_STEPS
from .version import __version__

if TYPE_CHECKING:
    from .callbacks import Callback
    from .experiment import (
        Analysis,
        Comparison,
        Demo,
        Judged,
        Ranks,
        Statistic,
        Training,
        Tuning,
        analyze,
        compare,
        demo,
        evaluate,
        ranks,
        report,
        shift,
        summarize,
        train,
        tune,
    )
    from .label_issues import LabelIssues, LabelIssuesComparison, compare_label_issues, find_label_issues
    from .methods import LabelEmbedding, LabelEmbeddingFixed, Method, MethodOutput, OneHot, build
    from .predict import Predicted, Prediction, Predictor, write_predictions
    from .predict.export import export

#: The names served by :mod:`labelemb.methods`, imported on first use (PEP 562): ``import labelemb``
#: (and the command line's help and its one-line mistakes) need not pay for torch.
_FROM_METHODS = ("LabelEmbedding", "LabelEmbeddingFixed", "Method", "MethodOutput", "OneHot", "build")
#: The Python API's calls and what they return, served by :mod:`labelemb.experiment`, imported on
#: first use likewise.
_FROM_EXPERIMENT = (
    "analyze",
    "compare",
    "demo",
    "evaluate",
    "ranks",
    "report",
    "shift",
    "summarize",
    "train",
    "tune",
    "Analysis",
    "Comparison",
    "Demo",
    "Judged",
    "Ranks",
    "Statistic",
    "Training",
    "Tuning",
)
#: What :func:`load` returns and what it predicts, and ``labelemb predict``'s call, served by
#: :mod:`labelemb.predict`.
_FROM_PREDICT = ("Predicted", "Prediction", "Predictor", "write_predictions")

#: Which training rows are wrong (:func:`find_label_issues`), and which label method's models find
#: them best (:func:`compare_label_issues`), served by :mod:`labelemb.label_issues`.
_FROM_LABEL_ISSUES = ("find_label_issues", "LabelIssues", "compare_label_issues", "LabelIssuesComparison")


__all__ = [
    "Analysis",
    "Comparison",
    "Demo",
    "Judged",
    "LabelEmbedding",
    "LabelIssues",
    "LabelIssuesComparison",
    "LabelEmbeddingFixed",
    "Method",
    "MethodOutput",
    "OneHot",
    "Predicted",
    "Prediction",
    "Predictor",
    "Ranks",
    "Statistic",
    "Training",
    "Tuning",
    "analyze",
    "build",
    "compare",
    "compare_label_issues",
    "demo",
    "evaluate",
    "export",
    "find_label_issues",
    "load",
    "ranks",
    "report",
    "shift",
    "summarize",
    "train",
    "tune",
    "write_predictions",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_METHODS:
        from . import methods  # lazy: `import labelemb` stays light; the methods load when named

        return getattr(methods, name)
    if name in _FROM_EXPERIMENT:
        from . import experiment  # lazy: the whole training and judging stack, when a call is named

        return getattr(experiment, name)
    if name in _FROM_LABEL_ISSUES:
        from . import label_issues  # lazy: the training stack and cleanlab, when the call is named

        return getattr(label_issues, name)
    if name in _FROM_PREDICT:
        from . import predict  # lazy: the trainer and data stack, when a prediction is named

        return getattr(predict, name)
    if name == "export":
        # Served from its module: the package's attribute labelemb.predict.export is that module.
        from .predict.export import export  # lazy: the trainer and data stack, when the call is named

        return export
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        # A subpackage named as an attribute (`labelemb.experiment.Comparison` after a bare
        # `import labelemb`), imported then: importing binds it here, so this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'labelemb' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The names a notebook completes: the served ones with those defined here."""
    return sorted({*globals(), *__all__})


def load(path: Any, **options: Any) -> Predictor:
    """A trained run folder or exported bundle, ready to predict (:func:`labelemb.predict.load`)."""
    from .predict import load as load_trained  # lazy: the trainer and data stack, only when asked

    return load_trained(path, **options)


@_DEFAULT_CALLBACKS.register("trackers")
def _trackers() -> Callback:
    """``train.log_to``: every run is handed the trackers' callback (the trainer imports no tracker;
    :mod:`labelemb.tracking` is imported when a run starts, its trackers' packages only when named)."""
    from .tracking import TrackerCallback  # lazy: the trainer stack, when a run starts

    return TrackerCallback()


@_CONFIG_STEPS.register("clean")
def _clean_step(config: Any) -> Any:
    """The config's ``clean:`` step, before ``train`` and ``compare`` train: the list of wrong
    labels made (or read back), and the config that trains on the data it cleans
    (:mod:`labelemb.label_issues.clean_step`); a config without one is handed back as it is."""
    if getattr(config, "clean", None) is None:
        return config
    # lazy: the cross-fitting stack and cleanlab, for a config that asks for the step
    from .label_issues.clean_step import cleaned_config

    return cleaned_config(config)
