"""`labelemb analyze`: heatmaps, nearest labels, dendrograms, MDS maps and WordNet correlation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from .compare import mean_std
from .facet_pictures import analyze_faceted, is_faceted
from .facets import facet_agreement
from .heatmap import plot_similarity_heatmap
from .noise_similarity import noise_agreement, noise_matrices, plot_beside_noise
from .representation import LabelRepresentation, run_representation
from .similarity import label_similarity_rows, similar_table, write_nearest
from .structure import mds_coordinates, plot_dendrogram, plot_mds

#: Pictures of more labels than this are unreadable (and a heatmap of a vocabulary would not fit in memory).
MAX_PICTURED_LABELS = 200


def _subset(rep: LabelRepresentation, classes: list[str] | None) -> tuple[list[int], list[str]]:
    count = len(classes) if classes else len(rep.class_names)
    if count > MAX_PICTURED_LABELS:
        report = (
            "`labelemb report DIR` on a comparison of text runs lists the nearest words of the most "
            "frequent target words"
            if rep.text
            else "`labelemb report --no-analysis` for a report without the pictures"
        )
        raise ValueError(
            f"{rep.method} seed {rep.seed} has {len(rep.class_names):,} labels: pictures of {count:,} are "
            f"unreadable; pass --classes with at most {MAX_PICTURED_LABELS} of them, or list nearest "
            f"labels with `labelemb similar RUN_DIR --labels a,b` ({report})"
        )
    if not classes:
        return list(range(len(rep.class_names))), rep.class_names
    unknown = [c for c in classes if c not in rep.class_names]
    if unknown:
        raise ValueError(
            f"--classes {', '.join(unknown)} not among this run's classes: {', '.join(rep.class_names)}"
        )
    return [rep.class_names.index(c) for c in classes], list(classes)


def wordnet_correlation(rep: LabelRepresentation) -> dict[str, Any]:
    """LwAL's Eq. 4 for this run, or the reason it does not apply."""
    if rep.text:
        return {"skipped": f"{rep.dataset} is a text corpus: WordNet correlation is for image classes"}
    try:
        from .wordnet import semantic_correlation  # lazy: the wordnet extra (nltk)
        from .wordnet_synsets import SYNSETS  # lazy: the wordnet extra, beside its reader
    except ImportError as error:  # nltk is an optional extra
        return {"skipped": f"WordNet correlation needs nltk: pip install 'labelemb[wordnet]' ({error})"}
    if rep.dataset not in SYNSETS:
        return {"skipped": f"no WordNet mapping for the classes of dataset {rep.dataset!r}"}
    return semantic_correlation(rep.matrix, rep.class_names, rep.dataset)


def analyze_run(
    rep: LabelRepresentation,
    out_dir: Path,
    *,
    classes: list[str] | None = None,
    top: int = 5,
    fmt: str = "png",
    noise: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write every picture and table of one run's representation to ``out_dir``; return the numbers.
    A run of more than :data:`MAX_PICTURED_LABELS` tags named ``facet::tag`` is drawn against its
    facets instead (:func:`~.facet_pictures.analyze_faceted`); fewer such tags get the usual
    pictures and the facet figures. ``noise``: the run's training-label
    matrices (:func:`~.noise_similarity.noise_matrices`), for
    a run trained on noisy labels: the similarity is then compared with them and drawn beside them."""
    if not classes and len(rep.class_names) > MAX_PICTURED_LABELS and is_faceted(rep.class_names):
        return analyze_faceted(rep, out_dir, top=top, fmt=fmt)  # tags in facets: drawn against them
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, names = _subset(rep, classes)
    matrix: Tensor = rep.matrix[rows]
    similarity = label_similarity_rows(rep.matrix, rows)[:, rows]
    title = f"{rep.method} seed {rep.seed} ({rep.source})"
    plot_similarity_heatmap(similarity, names, out_dir / f"heatmap.{fmt}", title=title)
    plot_dendrogram(matrix, names, out_dir / f"dendrogram.{fmt}", title=title)
    plot_mds(matrix, names, out_dir / f"mds.{fmt}", title=title)
    result = {
        **rep.header(names),
        "similarity": similarity.tolist(),
        "most_similar": write_nearest(similarity, names, top, out_dir / "similar.md"),
        "mds": mds_coordinates(matrix).tolist(),
        "wordnet": wordnet_correlation(rep),
    }
    if is_faceted(names):  # few enough tags in facets for a heatmap: their figures beside it
        result["facets"] = facet_agreement(similarity, names)
    if noise is not None:
        result["noise"] = noise_agreement(similarity, noise, rows)
        plot_beside_noise(similarity, noise, rows, names, out_dir / f"noise.{fmt}", title=title)
    (out_dir / "analysis.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarize_wordnet(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean ± std of the WordNet tau-b over each method's runs."""
    by_method: dict[str, list[float]] = {}
    for result in results:
        tau = result["wordnet"].get("mean_tau")
        if tau is not None and not math.isnan(tau):
            by_method.setdefault(result["method"], []).append(tau)
    return {
        method: dict(zip(("runs", "mean", "std"), (len(taus), *mean_std(taus))))
        for method, taus in by_method.items()
    }


def summarize_noise(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean ± std over each method's runs of the Pearson and Spearman correlation of its learned
    similarity with the noise's transition and reverse matrices (runs where it is defined), keyed
    ``transition pearson``, ``reverse spearman``, ..."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for result in results:
        for name, correlation in result.get("noise", {}).items():
            for kind, value in correlation.items():
                if not math.isnan(value):
                    by_method.setdefault(result["method"], {}).setdefault(f"{name} {kind}", []).append(value)
    return _mean_std_by_method(by_method)


def _mean_std_by_method(by_method: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    """Each method's figures (key -> its runs' values) as ``{runs, mean, std}``."""
    return {
        method: {key: dict(zip(("runs", "mean", "std"), (len(v), *mean_std(v)))) for key, v in found.items()}
        for method, found in by_method.items()
    }


#: The figures of facet agreement summarised over a method's runs, and their columns in analysis.md.
FACET_FIGURES = {
    "facet_nearest": "nearest tag in its facet",
    "facet_nearest_chance": "by chance",
    "facet_pair_auroc": "same-facet pair AUROC",
}


def summarize_facets(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean ± std over each method's runs drawn against their facets of :data:`FACET_FIGURES`
    (fractions), keyed by figure."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for result in results:
        for key in FACET_FIGURES:
            if key in result.get("facets", {}):
                by_method.setdefault(result["method"], {}).setdefault(key, []).append(result["facets"][key])
    return _mean_std_by_method(by_method)


def analyze(
    run_dirs: list[str | Path],
    output_dir: str | Path,
    *,
    classes: list[str] | None = None,
    top: int = 5,
    fmt: str = "png",
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Analyse each run into ``output_dir/<method>-seed<N>/`` and summarise them together."""
    if fmt not in ("png", "svg"):
        raise ValueError(f"--format must be png or svg, got {fmt!r}")
    output_dir = Path(output_dir)
    results = []
    for run_dir in run_dirs:
        rep = run_representation(run_dir, data_dir=data_dir)
        out = output_dir / f"{rep.method}-seed{rep.seed}"
        noise = noise_matrices(run_dir)
        analysed = analyze_run(rep, out, classes=classes, top=top, fmt=fmt, noise=noise)
        results.append({**analysed, "run_dir": str(run_dir)})
    summary = {"runs": results, "wordnet_by_method": summarize_wordnet(results)}
    if any("noise" in result for result in results):
        summary["noise_by_method"] = summarize_noise(results)
    if any("facets" in result for result in results):
        summary["facets_by_method"] = summarize_facets(results)
    (output_dir / "analysis.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output_dir / "analysis.md").write_text(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Markdown: WordNet correlation per method, then each run's nearest labels."""
    lines = []
    wordnet = summary["wordnet_by_method"]
    if wordnet:
        lines += [
            "## WordNet correlation (Kendall's tau-b, LwAL Eq. 4)",
            "",
            "| method | runs | tau-b |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| {m} | {w['runs']} | {w['mean']:.3f} ± {w['std']:.3f} |" for m, w in wordnet.items()]
        lines.append("")
    noise = summary.get("noise_by_method")
    if noise:
        lines += [
            "## Learned similarity against the label noise (off-diagonal cells)",
            "",
            "| method | runs | T, Pearson | T, Spearman | R, Pearson | R, Spearman |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        keys = [f"{name} {kind}" for name in ("transition", "reverse") for kind in ("pearson", "spearman")]
        for method, found in noise.items():
            cells = [
                f"{found[key]['mean']:.3f} ± {found[key]['std']:.3f}" if key in found else "-" for key in keys
            ]
            runs = max(entry["runs"] for entry in found.values())
            lines.append(f"| {method} | {runs} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _facet_lines(summary.get("facets_by_method", {}))
    for result in summary["runs"]:
        lines += [f"## {result['method']} seed {result['seed']} ({result['source']})", ""]
        rows = {k: [(n, v) for n, v in row] for k, row in result["most_similar"].items()}
        lines += [similar_table(rows), ""]
        skipped = result["wordnet"].get("skipped")
        if skipped:
            lines += [f"WordNet: {skipped}", ""]
    return "\n".join(lines)


def _facet_lines(facets: dict[str, dict[str, Any]]) -> list[str]:
    """The "Tags against their facets" heading and :func:`facet_table`, or nothing without facets."""
    return ["## Tags against their facets", "", facet_table(facets), ""] if facets else []


def facet_table(facets: dict[str, dict[str, Any]]) -> str:
    """The Markdown table of :func:`summarize_facets`, one row a method, in percent."""
    lines = [
        "| method | runs | " + " | ".join(FACET_FIGURES.values()) + " |",
        "| --- | ---: |" + " ---: |" * len(FACET_FIGURES),
    ]
    for method, found in facets.items():
        cells = [percent(found[key]) if key in found else "-" for key in FACET_FIGURES]
        runs = max(entry["runs"] for entry in found.values())
        lines.append(f"| {method} | {runs} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def percent(entry: dict[str, Any]) -> str:
    """A summarised fraction (``mean``, ``std``) as ``16.5 ± 0.8 %``."""
    return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f} %"
