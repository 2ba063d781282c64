"""The ranks picture (issue 79): each method's rank under each criterion of a comparison, computed
from its rows, drawn as a heatmap that shows those ranks and values, written by compare and by
``labelemb ranks``."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from helpers.report_checks import METHODS, PNG_MAGIC
from matplotlib.colors import to_rgb

from labelemb.analysis.ranks import (
    Criterion,
    comparison_criteria,
    experiments_rank_table,
    further_criterion,
    rank_figure,
    rank_table,
)
from labelemb.cli import main

ERROR = Criterion("test error %", "selected")
AUROC = Criterion("OOD AUROC % (patches)", "ood_patches_msp_auroc", higher_is_better=True)
#: Three methods by hand: b has the lowest error, c the highest AUROC; a and b tie on AUROC. (A
#: row names its OOD sets by their energy AUROC, as the comparison's rows do.)
ROWS = [
    {"method": m, "selected_mean": e, "ood_patches_msp_auroc_mean": a, "ood_patches_energy_auroc_mean": a}
    for m, e, a in (("a", 10.5, 80.0), ("b", 10.2, 80.0), ("c", 11.0, 95.0))
]


def test_ranks_follow_each_criterion_direction_and_share_ties():
    table = rank_table([(ERROR, ROWS), (AUROC, ROWS)])
    ranks = {m: list(table.ranks[i]) for i, m in enumerate(table.methods)}
    assert ranks == {"a": [2.0, 2.0], "b": [1.0, 2.0], "c": [3.0, 1.0]}
    # rows by mean rank: b 1.5, then a and c at 2.0 by name
    assert table.methods == ["b", "a", "c"]
    assert table.values[0].tolist() == [10.2, 80.0]


def test_a_method_without_a_figure_has_no_rank_there():
    partial = [*ROWS[:2], {"method": "c", "selected_mean": 11.0, "ood_patches_msp_auroc_mean": None}]
    table = rank_table([(ERROR, partial), (AUROC, partial)])
    row = table.methods.index("c")
    assert table.ranks[row, 0] == 3 and math.isnan(table.ranks[row, 1]) and math.isnan(table.values[row, 1])
    assert table.mean_rank("c") == 3.0 and table.coverage("c") == 1
    assert "| c | 11.00 (3) | - | 1 of 2 | 3.0 |" in table.markdown()


def test_a_method_ranked_on_fewer_criteria_cannot_head_the_table():
    """Issue 99: `labelemb ranks runs/demo runs/digits-sym40` put gce first with mean rank 1.0 from
    its one figure (the noisy folder's) above methods ranked on all five. Rows now go by how many
    criteria a method is ranked on, then by mean rank, and the table says how many."""
    noisy = [
        *(dict(row, selected_mean=row["selected_mean"] + 30) for row in ROWS),
        {"method": "gce", "selected_mean": 20.0},
    ]
    table = rank_table(
        [(ERROR, ROWS), (AUROC, ROWS), (Criterion("error % at 40 % wrong labels", "selected"), noisy)]
    )
    assert table.methods == ["b", "a", "c", "gce"]
    assert [table.ranked_on(m) for m in table.methods] == ["3 of 3", "3 of 3", "3 of 3", "1 of 3"]
    assert table.mean_rank("gce") == 1.0 and table.ranks[3].tolist()[2] == 1.0  # its one rank kept
    lines = table.markdown().splitlines()
    assert lines[0].endswith("| error % at 40 % wrong labels | ranked on | mean rank |")
    assert lines[-1] == "| gce | - | - | 20.00 (1) | 1 of 3 | 1.0 |"
    fig = rank_figure(table)
    right = fig.axes[0].child_axes[0]  # the mean ranks, right of the rows
    assert [t.get_text() for t in right.get_yticklabels()][-1] == "1.0  (1 of 3)"


def test_a_noisy_folder_alone_heads_its_score_with_its_share_of_wrong_labels():
    """A noisy comparison ranked on its own (or first of several) heads its score column as a further
    noisy folder does: its test split is clean, its training labels were not."""
    noisy = [{**row, "noise_rate_mean": 40.2} for row in ROWS]
    heads = [c.head for c in comparison_criteria(noisy)]
    assert heads == ["error % at 40 % wrong labels", "OOD AUROC % (patches)"]
    assert comparison_criteria(ROWS)[0].head == "test error %"


def test_criteria_are_those_the_rows_have():
    heads = [c.head for c in comparison_criteria(ROWS)]
    assert heads == ["test error %", "OOD AUROC % (patches)"]


def test_a_tag_task_is_ranked_by_its_macro_map_the_figures_reported_beside_it_and_its_tag_ece():
    rows = [
        {
            "method": m,
            "metric": "test_map_macro",
            "selected_mean": s,
            "test_f1_micro_mean": f,
            "test_lrap_mean": r,
            "tags_tag_ece_mean": e,
        }
        for m, s, f, r, e in (
            ("a", 42.8, 58.1, 72.3, 0.5),
            ("b", 43.3, 58.0, 72.2, 0.9),
            ("c", 41.9, 57.2, 72.4, 1.8),
        )
    ]
    criteria = comparison_criteria(rows)
    assert [c.head for c in criteria] == ["test macro mAP %", "test micro-F1 %", "test LRAP %", "tag ECE %"]
    table = rank_table([(criterion, rows) for criterion in criteria])
    ranks = {m: list(table.ranks[i]) for i, m in enumerate(table.methods)}
    # the scores higher-better, the highest first under each; the ECE lower-better
    assert ranks == {"a": [2.0, 1.0, 2.0, 1.0], "b": [1.0, 2.0, 3.0, 2.0], "c": [3.0, 3.0, 1.0, 3.0]}


def test_a_noisy_comparison_is_headed_by_its_share_of_wrong_labels():
    noisy = [{**row, "noise_rate_mean": 45.2} for row in ROWS]
    assert further_criterion(noisy, "pairflip").head == "error % at 45 % wrong labels"
    assert further_criterion(ROWS, "other").head == "error (other)"


def test_the_figure_shows_the_ranks_and_values_in_rank_order():
    table = rank_table([(ERROR, ROWS), (AUROC, ROWS)])
    fig = rank_figure(table, title="hand")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["test error %", "OOD AUROC % (patches)"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells[(0, 0)] == "1  (10.20)" and cells[(2, 1)] == "1  (95.00)" and cells[(1, 1)] == "2  (80.00)"
    shown = np.asarray(ax.images[0].get_array())
    assert shown[0, 0] < shown[2, 0]  # the first rank gets the colour map's low (green) end


def _luminance(colour) -> float:
    """WCAG 2's relative luminance, written out here apart from the library's."""
    channels = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def _contrast(a, b) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_each_cell_s_text_is_black_or_white_whichever_reads_better_on_it():
    """Issue 99: black text on the dark red (and dark green) cells was hard to read. Each cell's text
    colour is read from the figure's text artists and the cell's colour from its image."""
    five = [{"method": m, "selected_mean": e} for m, e in zip("abcde", (10.0, 11.0, 12.0, 13.0, 14.0))]
    table = rank_table([(ERROR, five), (AUROC, ROWS)])
    ax = rank_figure(table).axes[0]
    image = ax.images[0]
    shown = image.get_array()
    colours = {}
    for text in ax.texts:
        j, i = (round(v) for v in text.get_position())
        cell = "white" if np.ma.is_masked(shown[i, j]) else image.to_rgba(shown[i, j])
        other = "black" if to_rgb(text.get_color()) == to_rgb("white") else "white"
        assert _contrast(text.get_color(), cell) >= _contrast(other, cell), text.get_text()
        colours[table.methods[i], j] = to_rgb(text.get_color())
    white, black = to_rgb("white"), to_rgb("black")
    # the last of five (dark red) and the first (dark green) in white; the middle (yellow) in black
    assert colours["e", 0] == white and colours["a", 0] == white and colours["c", 0] == black
    assert colours["e", 1] == black  # no AUROC: "-" on the axes' white


def test_a_column_s_last_rank_is_red_however_many_methods_it_ranks():
    """The colour runs from a column's first to its last rank: two methods are green and red (before,
    rank over the number of rows: the first of two was yellow)."""
    two = [{"method": m, "selected_mean": e} for m, e in (("a", 1.0), ("b", 2.0))]
    three = [*two, {"method": "c", "selected_mean": 3.0}]
    table = rank_table([(ERROR, three), (Criterion("other", "selected"), two)])
    shown = np.ma.filled(np.asarray(rank_figure(table).axes[0].images[0].get_array(), dtype=float), np.nan)
    assert shown[:, 0].tolist() == [0.0, 0.5, 1.0] and shown[:2, 1].tolist() == [0.0, 1.0]


def test_compare_writes_the_picture_and_ranks_draws_one_of_several_comparisons(experiment, tmp_path, capsys):
    assert (experiment / "ranks.png").read_bytes()[:8] == PNG_MAGIC
    copy = tmp_path / "again"
    shutil.copytree(experiment, copy)
    table = experiments_rank_table([experiment, copy])
    assert sorted(table.methods) == sorted(METHODS)
    assert table.heads[:2] == ["test error %", "ECE %"] and "OOD AUROC % (patches)" in table.heads
    assert table.heads[-1] == "error (again)"
    # the copy's column ranks as the first one's error column does
    assert table.ranks[:, 0].tolist() == table.ranks[:, -1].tolist()
    output = tmp_path / "ranks.svg"
    assert main(["ranks", str(experiment), str(copy), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| method | test error % | ECE %") and str(output) in printed
    assert output.read_text().lstrip().startswith("<?xml")


def test_ranks_of_one_method_are_refused(experiment, tmp_path, capsys):
    single = tmp_path / "single"
    shutil.copytree(experiment / METHODS[0], single / METHODS[0])
    assert main(["ranks", str(single)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labelemb ranks: error: ") and "runs of one method" in err


def test_a_folder_without_runs_is_one_line(tmp_path, capsys):
    assert main(["ranks", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("labelemb ranks: error: ")


def test_ranks_of_the_methods_asked_for_are_among_themselves(experiment, capsys):
    table = experiments_rank_table([experiment], methods=[METHODS[1]])
    assert table.methods == [METHODS[1]] and set(table.ranks[0]) == {1.0}
    with pytest.raises(ValueError, match="has no runs of lwr"):
        experiments_rank_table([experiment], methods=["lwr", METHODS[0]])
    assert main(["ranks", str(experiment), "--methods", f"{METHODS[0]},nope"]) == 2
    assert "has no runs of nope" in capsys.readouterr().err
