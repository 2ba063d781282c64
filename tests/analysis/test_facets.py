"""The facet figures of a tag similarity (labelemb.analysis.facets), worked out by hand."""

from __future__ import annotations

import pytest
import torch

from labelemb.analysis.facets import facet_agreement, facet_of

TAGS = ["use::edit", "use::view", "works-with::image", "works-with::text", "role::program"]


def test_the_facet_is_the_name_up_to_the_separator():
    assert facet_of("implemented-in::python") == "implemented-in"
    assert facet_of("plain") == "plain"


def test_a_similarity_that_groups_the_facets_recovers_them():
    # Each tag's nearest other tag is its facet's other tag; role::program has none in its facet.
    similarity = torch.tensor(
        [
            [1.0, 0.9, 0.1, 0.2, 0.3],
            [0.9, 1.0, 0.2, 0.1, 0.3],
            [0.1, 0.2, 1.0, 0.8, 0.4],
            [0.2, 0.1, 0.8, 1.0, 0.4],
            [0.3, 0.3, 0.4, 0.5, 1.0],
        ]
    )
    figures = facet_agreement(similarity, TAGS)
    # 4 of 5 tags have their facet-mate as nearest; role::program cannot.
    assert figures["facet_nearest"] == pytest.approx(4 / 5)
    # Four tags have 1 same-facet tag among 4 others, role::program 0: (4 * 1/4 + 0) / 5.
    assert figures["facet_nearest_chance"] == pytest.approx(1 / 5)
    # The 2 same-facet pairs (0.9, 0.8) rank above all 8 others: AUROC 1.
    assert figures["facet_pair_auroc"] == pytest.approx(1.0)


def test_a_similarity_that_ignores_the_facets_is_at_chance_by_the_pairs():
    similarity = torch.ones(5, 5)
    assert facet_agreement(similarity, TAGS)["facet_pair_auroc"] == pytest.approx(0.5)


def test_a_grouping_with_nothing_to_find_is_refused():
    with pytest.raises(ValueError, match="facet with two tags"):
        facet_agreement(torch.eye(3), ["a::x", "b::y", "c::z"])
    with pytest.raises(ValueError, match="m x m"):
        facet_agreement(torch.eye(4), TAGS)
