"""`labelemb report` on runs whose tags come in facets (``facet::tag``, as Debian's debtags): each
method's section shows what :func:`~labelemb.analysis.facet_pictures.analyze_faceted` drew for its
lowest seed (the facet x facet heatmap, the dendrogram in facet colours, the nearest tags), and a
"Tags against their facets" section takes the WordNet section's place: the facet agreement of
:mod:`~labelemb.analysis.facets` for every seed of every method, mean ± std."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .analyze import FACET_FIGURES, facet_table, summarize_facets
from .facet_pictures import facet_figures
from .report_html import escape, img, markdown_table_html
from .representation import run_representation
from .similarity import similar_table

FACETS_SECTION = "facets"
#: The facet agreement of every seed (``analysis.json`` has the lowest seed of each method only).
FACETS_FILE = "facets-all-seeds.json"
#: The pictures :func:`~labelemb.analysis.facet_pictures.analyze_faceted` draws, by entry key.
FACET_PICTURES = {"facets_png": "facets.png", "dendrogram_png": "dendrogram.png"}


def facet_entry(result: dict[str, Any], out_dir: Path) -> dict[str, Any] | None:
    """A method's entry on the page from its run analysed against its facets (``result``, its
    ``analysis.json``; the pictures in ``out_dir``); None where the run was not drawn that way."""
    pictures = {key: out_dir / name for key, name in FACET_PICTURES.items()}
    if "facets" not in result or not all(path.is_file() for path in pictures.values()):
        return None
    return {
        "method": result["method"],
        "seed": result["seed"],
        "source": result["source"],
        "agreement": {key: result["facets"][key] for key in FACET_FIGURES},
        "most_similar": result["most_similar"],
        **{key: path.read_bytes() for key, path in pictures.items()},
    }


def facets_over_seeds(
    analysed: list[dict[str, Any]],
    other_runs: list[tuple[str, Path]],
    analysis_dir: Path,
    data_dir: str | None,
) -> dict[str, dict[str, Any]]:
    """:func:`~labelemb.analysis.analyze.summarize_facets` over every seed: the analysed lowest
    seeds' figures and those of the ``(method, run_dir)`` of ``other_runs`` whose method was drawn
    against its facets; written to ``analysis_dir/facets-all-seeds.json``. Empty where no run was."""
    results = [{key: r[key] for key in ("method", "seed", "facets")} for r in analysed if "facets" in r]
    faceted = {result["method"] for result in results}
    if not faceted:
        return {}
    for method, run_dir in other_runs:
        if method in faceted:
            rep = run_representation(run_dir, data_dir=data_dir)
            results.append({"method": method, "seed": rep.seed, "facets": facet_figures(rep)})
    by_method = summarize_facets(results)
    record = {"runs": results, "facets_by_method": by_method}
    (analysis_dir / FACETS_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return by_method


def cached_facets(analysis_dir: Path) -> dict[str, dict[str, Any]]:
    """What :func:`facets_over_seeds` wrote in ``analysis_dir`` before (empty if nothing)."""
    path = analysis_dir / FACETS_FILE
    return json.loads(path.read_text())["facets_by_method"] if path.is_file() else {}


def facet_method_html(m: dict[str, Any], top: int) -> list[str]:
    """The body of a method's section for an entry of :func:`facet_entry`."""
    name, seed = m["method"], m["seed"]
    near, chance, auroc = (100 * m["agreement"][key] for key in FACET_FIGURES)
    neighbours = {label: [(o, float(v)) for o, v in row[:top]] for label, row in m["most_similar"].items()}
    shown = max((len(row) for row in neighbours.values()), default=0)
    return [
        f"<p>Seed {escape(seed)}, label representation: {escape(m['source'])}. A tag's most similar "
        f"tag is in its own facet for {near:.1f} % of the tags ({chance:.1f} % by chance); the "
        f"similarity tells a pair of one facet from a pair of two with an AUROC of {auroc:.1f} %.</p>",
        '<div class="method">',
        "<figure>",
        img(m["facets_png"], f"mean similarity between the tags of each pair of facets, {name} seed {seed}"),
        "</figure>",
        "<figure>",
        img(m["dendrogram_png"], f"average-linkage dendrogram of the tags in facet colours, {name}"),
        "</figure>",
        "</div>",
        f"<h3>Most similar tags (top {shown})</h3>",
        markdown_table_html(similar_table(neighbours, "tag")),
    ]


def facets_section(facets_by_method: dict[str, dict[str, Any]]) -> list[str]:
    """The "Tags against their facets" section: :func:`facets_over_seeds` as a table."""
    return [
        f'<section id="{FACETS_SECTION}">',
        "<h2>Tags against their facets</h2>",
        "<p>Whether each method's tag similarity groups the tags as their facets do, mean ± std over "
        "every seed of the method: the share of tags whose most similar tag is in their own facet, "
        "that share for a tag drawn at random, and the AUROC of a pair's similarity for telling "
        "pairs of one facet from pairs of two (50 % is chance).</p>",
        markdown_table_html(facet_table(facets_by_method)),
        "</section>",
    ]
