"""The whole experiment in Python, one call per command: :func:`train`, :func:`compare`,
:func:`tune`, :func:`evaluate`, :func:`shift`, :func:`demo`, :func:`report`, :func:`ranks` and
:func:`analyze` do what ``labelemb train``, ``compare``, ``tune``, ``evaluate``, ``shift``,
``demo``, ``report``, ``ranks`` and ``analyze`` do (the command line parses its arguments and
calls them), the same runs, files, figures and tables, and return what a notebook can use:
:class:`Comparison` (its rows as records, one method's statistic of a figure with ``figure()``,
``to_dataframe()``, ``to_markdown()``, ``to_csv()``, the run folders, the pictures' files),
:class:`Training`, :class:`Tuning`, :class:`Judged`, :class:`Demo`, :class:`Ranks`,
:class:`Analysis`. Each shows itself in a shell as one short line; a notebook shows a Comparison,
Training, Tuning or Ranks as its table.

Each is also served as ``labelemb.<name>``::

    import labelemb

    result = labelemb.compare("configs/mnist-mlp.yaml", methods=["onehot", "label_embedding"],
                              seeds=range(5), train={"epochs": 10})
    result.figure("selected", "label_embedding").mean, result.figures["curves.png"], result.to_markdown()
"""

from __future__ import annotations

from .digits_demo import Demo, demo
from .finished_runs import Analysis, Ranks, analyze, ranks, report
from .judging import Judged, evaluate, shift
from .running import Training, compare, make_executor, train
from .setting import DEMO_CONFIG, base_config
from .tables import Comparison, Statistic, summarize, write_comparison
from .tune_methods import Tuning, tune

__all__ = [
    "DEMO_CONFIG",
    "Analysis",
    "Comparison",
    "Demo",
    "Judged",
    "Ranks",
    "Statistic",
    "Training",
    "Tuning",
    "analyze",
    "base_config",
    "compare",
    "demo",
    "evaluate",
    "make_executor",
    "ranks",
    "report",
    "shift",
    "summarize",
    "train",
    "tune",
    "write_comparison",
]
