"""Analysis of runs: label similarity, heatmaps, tables."""

from .compare import Run, comparison_rows, load_runs
from .comparison_table import format_csv, format_markdown
from .curves import plot_error_curves
from .heatmap import plot_similarity_heatmap
from .similarity import label_similarity, load_run_representation, most_similar, similar_table
from .tables import mean_std, results_table

__all__ = [
    "Run",
    "comparison_rows",
    "format_csv",
    "format_markdown",
    "load_runs",
    "plot_error_curves",
    "label_similarity",
    "load_run_representation",
    "mean_std",
    "most_similar",
    "plot_similarity_heatmap",
    "results_table",
    "similar_table",
]
