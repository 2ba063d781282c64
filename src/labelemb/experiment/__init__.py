"""The whole experiment in Python, one call per command: :func:`train`, :func:`compare`,
:func:`tune`, :func:`evaluate`, :func:`shift` and :func:`demo` do what ``labelemb train``,
``compare``, ``tune``, ``evaluate``, ``shift`` and ``demo`` do (the command line parses its
arguments and calls them), the same runs, files, figures and tables, and return what a notebook
can use: :class:`Comparison` (its rows as records, ``to_markdown()``, ``to_csv()``, the run
folders, the figures), :class:`Training`, :class:`Tuning`, :class:`Judged`, :class:`Demo`.

Each is also served as ``labelemb.<name>``::

    import labelemb

    result = labelemb.compare("configs/mnist-mlp.yaml", methods=["onehot", "label_embedding"],
                              seeds=range(5), train={"epochs": 10})
    result.rows[0]["selected_mean"], result.figures["curves.png"], result.to_markdown()
"""

from __future__ import annotations

from .digits_demo import Demo, demo
from .judging import Judged, evaluate, shift
from .running import Training, compare, make_executor, train
from .setting import DEMO_CONFIG, base_config
from .tables import Comparison, summarize, write_comparison
from .tune_methods import Tuning, tune

__all__ = [
    "DEMO_CONFIG",
    "Comparison",
    "Demo",
    "Judged",
    "Training",
    "Tuning",
    "base_config",
    "compare",
    "demo",
    "evaluate",
    "make_executor",
    "shift",
    "summarize",
    "train",
    "tune",
    "write_comparison",
]
