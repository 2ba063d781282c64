"""A tag run drawn against its facets (analysis/facet_pictures.py) by `labelemb analyze`."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from labelemb.analysis.analyze import analyze_run, format_summary, summarize_facets
from labelemb.analysis.facet_pictures import analyze_faceted, facet_matrix, is_faceted
from labelemb.analysis.representation import LabelRepresentation


def representation(names: list[str], seed: int = 0) -> LabelRepresentation:
    generator = torch.Generator().manual_seed(seed)
    facets = sorted({name.split("::")[0] for name in names})
    # Each tag's row leans towards the tags of its own facet, so that the facets can be recovered.
    rows = torch.rand(len(names), len(names), generator=generator) * 0.1
    of_tag = torch.tensor([facets.index(name.split("::")[0]) for name in names])
    rows += (of_tag[:, None] == of_tag[None, :]).float()
    return LabelRepresentation(
        rows / rows.sum(1, keepdim=True), names, "label_embedding", "learned", "tags", 0
    )


def test_the_facet_matrix_is_the_mean_similarity_of_their_tags():
    names = ["a::1", "a::2", "a::3", "b::1", "b::2", "c::1"]
    similarity = torch.arange(36, dtype=torch.float64).reshape(6, 6)
    facets, matrix = facet_matrix(similarity, names)
    assert facets == ["a", "b", "c"]
    s = similarity.numpy()
    assert matrix[0, 0] == pytest.approx((s[0, 1] + s[0, 2] + s[1, 0] + s[1, 2] + s[2, 0] + s[2, 1]) / 6)
    assert matrix[0, 1] == pytest.approx(s[0:3, 3:5].mean())
    assert matrix[1, 0] == pytest.approx(s[3:5, 0:3].mean())
    assert matrix[2, 1] == pytest.approx(s[5, 3:5].mean())
    assert math.isnan(matrix[2, 2])  # a facet of one tag has no pair of distinct tags


def test_faceted_names_need_two_facets_and_a_facet_of_two():
    assert is_faceted(["a::1", "a::2", "b::1"])
    assert not is_faceted(["a::1", "a::2", "a::3"])  # one facet
    assert not is_faceted(["a::1", "b::1", "c::1"])  # no facet of two
    assert not is_faceted(["a::1", "a::2", "plain"])


def test_a_run_of_many_faceted_tags_is_drawn_against_its_facets(tmp_path):
    names = [f"facet{f}::tag{t}" for f in range(21) for t in range(10)]  # 210 tags, 21 facets
    result = analyze_run(representation(names), tmp_path / "run")
    for name in ("facets.png", "dendrogram.png", "similar.md", "analysis.json"):
        assert (tmp_path / "run" / name).is_file(), name
    saved = json.loads((tmp_path / "run" / "analysis.json").read_text())
    assert saved["facets"]["names"] == sorted(f"facet{f}" for f in range(21))
    # Rows that lean to their facet: every nearest tag in its facet, same-facet pairs ranked first.
    assert saved["facets"]["facet_nearest"] == 1.0
    assert saved["facets"]["facet_pair_auroc"] == 1.0
    assert saved["facets"]["facet_nearest_chance"] == pytest.approx(9 / 209)
    assert result["facets"]["facet_nearest"] == 1.0


def test_a_run_of_few_faceted_tags_gets_the_usual_pictures_and_the_facet_figures(tmp_path):
    names = [f"facet{f}::tag{t}" for f in range(3) for t in range(4)]
    result = analyze_run(representation(names), tmp_path / "run")
    assert (tmp_path / "run" / "heatmap.png").is_file() and not (tmp_path / "run" / "facets.png").exists()
    assert result["facets"]["facet_nearest"] == 1.0 and result["facets"]["facet_pair_auroc"] == 1.0
    assert result["facets"]["facet_nearest_chance"] == pytest.approx(3 / 11)
    assert summarize_facets([result])["label_embedding"]["facet_nearest"]["mean"] == 1.0


def test_many_labels_without_facets_are_still_refused(tmp_path):
    names = [f"class{k}" for k in range(201)]
    with pytest.raises(ValueError, match="pictures of 201 are unreadable"):
        analyze_run(replace(representation([f"x::{name}" for name in names]), class_names=names), tmp_path)


def test_the_facet_figures_are_summarised_per_method(tmp_path):
    names = [f"facet{f}::tag{t}" for f in range(3) for t in range(4)]
    second = replace(
        representation(names), seed=1, matrix=torch.rand(12, 5, generator=torch.Generator().manual_seed(1))
    )
    results = [
        analyze_faceted(representation(names), tmp_path / "a"),
        analyze_faceted(second, tmp_path / "b"),
        {"method": "onehot", "seed": 0, "wordnet": {"skipped": "x"}},  # no facets: left out
    ]
    summary = summarize_facets(results)
    assert set(summary) == {"label_embedding"}
    found = [result["facets"]["facet_pair_auroc"] for result in results[:2]]
    auroc = summary["label_embedding"]["facet_pair_auroc"]
    assert auroc["runs"] == 2
    assert auroc["mean"] == pytest.approx(sum(found) / 2)
    assert auroc["std"] == pytest.approx(abs(found[0] - found[1]) / math.sqrt(2))
    assert summary["label_embedding"]["facet_nearest_chance"]["mean"] == pytest.approx(3 / 11)
    text = format_summary({"runs": results[:2], "wordnet_by_method": {}, "facets_by_method": summary})
    assert "## Tags against their facets" in text
    assert "| label_embedding | 2 | " in text
    assert f"{100 * auroc['mean']:.1f} ± {100 * auroc['std']:.1f} %" in text
