"""The HTML of `labelemb report`: one self-contained page from what the report has gathered.

Every picture is a PNG embedded as a ``data:`` URI and the style sheet is inline, so the page
opens offline; every text is escaped here. What goes on the page (tables, figures, the nearest
labels) is gathered by :mod:`labelemb.analysis.report`.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..tasks.scoring import Scoring
from .beyond_error import TableBlock
from .calibration_table import CalibrationTable
from .report_facets import FACETS_SECTION, facet_method_html, facets_section
from .report_html import escape, img, markdown_table_html, page_head, table_block_html
from .report_noise import NOISY_SECTION, NoisyLabels, noisy_labels_section
from .report_shift import SHIFT_SECTION, UnderShift, shift_section
from .similarity import similar_table

#: The sections every report has (a text comparison has no WordNet section); a comparison whose
#: runs recorded their calibration also has one, after the curves, one whose runs were judged
#: beyond their error (``evaluation.json``) another, after that, and one whose runs were shifted
#: (``shift.json``, :mod:`.report_shift`) a last one.
SECTION_IDS = ("comparison", "curves", "wordnet")
CALIBRATION_SECTION = "calibration"
BEYOND_ERROR_SECTION = "knowing-when-wrong"
#: The links to the sections a page may have after its curves, in page order.
OPTIONAL_LINKS = (
    (CALIBRATION_SECTION, "calibration"),
    (BEYOND_ERROR_SECTION, "knowing when it is wrong"),
    (SHIFT_SECTION, "under shift"),
    (NOISY_SECTION, "noisy labels"),
)


@dataclass
class BeyondError:
    """The "Knowing when it is wrong" section: the tables of the runs' evaluations
    (:func:`~labelemb.analysis.beyond_error.beyond_error_blocks`), the risk-coverage figure
    (:func:`~labelemb.analysis.curves.plot_risk_coverage`; None where no run recorded its curve),
    the runs it leaves out (``"onehot seed 1 (not evaluated)"``) and the command that adds what
    they lack."""

    blocks: list[TableBlock]
    risk_coverage_png: bytes | None
    left_out: list[str]
    command: str


#: What the comparison's p columns are, on the page (:func:`labelemb.analysis.compare.welch_p`).
P_NOTE = (
    "p is Welch's t-test against the baseline: 1 where neither method's seeds vary and the two "
    "score the same, '-' where neither varies and they differ (no spread to weigh the difference "
    "against)."
)


def wordnet_table_html(wordnet_by_method: dict[str, dict[str, Any]], methods: list[str]) -> str:
    """Kendall's tau-b against WordNet per method: mean ± std over the seeds that have one."""
    rows = []
    for method in methods:
        wn = wordnet_by_method.get(method)
        value = f"{wn['mean']:.3f} ± {wn['std']:.3f}" if wn else "-"
        runs = wn["runs"] if wn else 0
        rows.append(
            f'<tr><td>{escape(method)}</td><td class="num">{runs}</td>'
            f'<td class="num">{escape(value)}</td></tr>'
        )
    return (
        '<table>\n<thead><tr><th>method</th><th class="num">seeds</th>'
        '<th class="num">tau-b (mean ± std)</th></tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def _tuning_section(tuning: dict[str, Any] | None) -> list[str]:
    if tuning is None:
        return []
    return [
        '<section id="tuning">',
        "<h2>Tuning</h2>",
        f"<p>{escape(tuning['note'])}</p>",
        markdown_table_html(tuning["markdown"], wide=True),
        img(tuning["history_png"], "each method's trials: dev score of every trial and the best so far"),
        "</section>",
    ]


def _maps_table(table: CalibrationTable) -> list[str]:
    """The table of the richer post-hoc maps, with its line and legend; nothing where no run has one."""
    if table.maps is None:
        return []
    return [
        "<p>After a richer post-hoc map than one temperature, each fit on the dev split and judged on "
        "the test split:</p>",
        markdown_table_html(table.maps, wide=True),
        f'<p class="note">{escape(table.maps_legend or "")}</p>',
    ]


def _calibration_section(reliability_png: bytes | None, table: CalibrationTable | None) -> list[str]:
    scaled = table is not None and table.scaled
    parts = [f'<section id="{CALIBRATION_SECTION}">', "<h2>Calibration</h2>"]
    if table is not None:
        parts += [
            "<p>The test predictions at the check each run selects, mean ± std over seeds"
            + (
                ": raw, and scaled by the temperature T each run fit on its dev split (the test split "
                "is never fit on).</p>"
                if scaled
                else ".</p>"
            ),
            markdown_table_html(table.markdown, wide=True),
            f'<p class="note">{escape(table.legend)}</p>',
            *_maps_table(table),
            *([f"<p>{escape(table.verdict)}</p>"] if table.verdict else []),
        ]
    if reliability_png is not None:
        side_by_side = (
            " Each method's diagram raw, then scaled beside it (a panel's T is the fitted temperature, "
            "the mean over seeds where there are several)."
            if scaled
            else ""
        )
        parts += [
            "<p>Reliability diagrams of the test predictions at the check each run selects, every "
            "seed of a method pooled: the accuracy of the predictions in each of 15 equal-width bins "
            "of confidence (the top softmax probability), the gap to the bin's mean confidence "
            "hatched red with a black tick at the mean confidence, the diagonal for perfect "
            "calibration; below, the share of predictions in each bin. Bars under the diagonal: "
            "overconfident; above it: underconfident. A panel's ECE is that of its pooled "
            f"predictions (the table's is the mean over seeds).{side_by_side}</p>",
            img(
                reliability_png,
                "reliability diagram of each method's test predictions"
                + (", raw and scaled" if scaled else ""),
            ),
        ]
    return [*parts, "</section>"]


def _beyond_error_section(judged: BeyondError) -> list[str]:
    parts = [
        f'<section id="{BEYOND_ERROR_SECTION}">',
        "<h2>Knowing when it is wrong</h2>",
        "<p>Each run's selected weights judged beyond their error, once they finished (its "
        "evaluation.json): how well its confidence ranks its own errors (selective classification), "
        "its split-conformal prediction sets, and how well it tells inputs of another data set from "
        "its own.</p>",
    ]
    for block in judged.blocks:
        parts += table_block_html(block)
    if judged.risk_coverage_png is not None:
        parts += [
            "<p>Risk-coverage curves of the test split at the check each run selects: a run that "
            "accepts only its most confident inputs (the max-softmax probability above a threshold), "
            "the error among those it accepts (selective risk) against the share it accepts "
            "(coverage); each seed thin, the mean over seeds bold. Lower is better; at 100 % "
            "coverage the risk is the test error, and the area under a curve is the AURC.</p>",
            img(judged.risk_coverage_png, "risk-coverage curves of each method on the test split"),
        ]
    if judged.left_out:
        what = "Left out of the figure" if judged.risk_coverage_png is not None else "No figure"
        parts.append(
            f'<p class="note">{what}, without a risk-coverage curve in their evaluation.json: '
            f"{escape(', '.join(judged.left_out))}. <code>{escape(judged.command)}</code> adds it "
            "from the saved weights.</p>"
        )
    return [*parts, "</section>"]


def render_report(
    *,
    title: str,
    made: str,
    setup: str,
    comparison_markdown: str,
    curves_png: bytes,
    methods: list[dict[str, Any]],
    wordnet_by_method: dict[str, dict[str, Any]],
    wordnet_absent: str,
    top: int = 5,
    metric: Scoring | None = None,
    reliability_png: bytes | None = None,
    tuning: dict[str, Any] | None = None,
    calibration: CalibrationTable | None = None,
    beyond_error: BeyondError | None = None,
    under_shift: UnderShift | None = None,
    noisy_labels: NoisyLabels | None = None,
    facets_by_method: dict[str, dict[str, Any]] | None = None,
    comparison_blocks: Sequence[TableBlock] = (),
) -> str:
    """The HTML page; every text is escaped here except ``made``, which is HTML already.

    ``methods``: one dict per method with ``method``, and, when it was analysed, ``seed``,
    ``source``, ``heatmap_png`` (bytes) and ``most_similar`` ({label: [[other, value]]}); otherwise
    ``missing`` (why not). ``wordnet_absent`` is the sentence shown when no method has a WordNet
    correlation. ``metric``: the comparison's (default: the test error of classification); for
    a text task's score (BLEU, ROUGE) the page speaks of that score, a method's entry has no
    heatmap but may have ``run_dir`` (to show the `labelemb similar` that prints its table), and
    there is no WordNet section. ``reliability_png``: the reliability diagrams of the methods'
    test predictions (:func:`labelemb.analysis.reliability.plot_reliability`), shown in a
    calibration section after the curves, raw and scaled side by side where ``calibration`` (the
    :func:`~labelemb.analysis.calibration_table.calibration_table`, shown in the same section with its notes)
    is scaled; both None: no such section. ``tuning``: a tuned experiment's
    ``markdown`` table (default against tuned settings), ``history_png`` (every study's trials) and
    ``note`` (how it was tuned), shown after the comparison; None: not tuned. ``beyond_error``: the
    tables of the runs' evaluations and their risk-coverage figure (:class:`BeyondError`), shown
    after the calibration; None: no such section. ``under_shift``: the table of the runs'
    ``shift.json`` and their error against severity (:class:`~.report_shift.UnderShift`), shown
    after that; None: no such section. ``noisy_labels``: the tables and memorisation curves of runs
    trained on noisy labels (:class:`~.report_noise.NoisyLabels`), shown last of these; None: no
    such section. ``facets_by_method``: tags in facets' :func:`~.report_facets.facets_over_seeds`, in
    place of the WordNet section (a method drawn so has ``facets_png`` and ``dendrogram_png``).
    ``comparison_blocks``: tables under the comparison's (a tag comparison's, :mod:`~.tag_table`).
    """
    text = metric is not None and metric.labels == "vocabulary"
    score = metric.score_name if metric is not None else ""
    names = [m["method"] for m in methods]
    calibrated = reliability_png is not None or calibration is not None
    faceted, split = bool(facets_by_method), curve_split(metric)
    on = [tuning is not None, calibrated, *(x is not None for x in (beyond_error, under_shift, noisy_labels))]
    present = {anchor for anchor, shown in zip(["tuning", *(a for a, _ in OPTIONAL_LINKS)], on) if shown}
    last = [(FACETS_SECTION, "facets")] if faceted else [] if text else [("wordnet", "WordNet")]
    nav = _nav(names, f"{split} {score} curves" if split else "error curves", present, last)
    note = _comparison_note(score, text, metric, reliability_png is not None)
    parts = [
        *page_head(title, made, setup, nav),
        *_comparison_section(comparison_markdown, comparison_blocks, note),
        *_tuning_section(tuning),
        '<section id="curves">',
        *_curves(curves_png, score, metric),
        "</section>",
    ]
    if calibrated:
        parts += _calibration_section(reliability_png, calibration)
    if beyond_error is not None:
        parts += _beyond_error_section(beyond_error)
    if under_shift is not None:
        parts += shift_section(under_shift)
    if noisy_labels is not None:
        parts += noisy_labels_section(noisy_labels)
    for m in methods:
        parts += _method_section(m, text, top)
    if faceted:  # tags in facets are judged against their facets, not WordNet
        parts += facets_section(facets_by_method or {})
    elif not text:  # WordNet relates the class names of image data sets, not a vocabulary
        parts += _wordnet_section(wordnet_by_method, wordnet_absent, names)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _comparison_section(markdown: str, blocks: Sequence[TableBlock], note: str) -> list[str]:
    """The comparison's table with the line on its columns above it, then the tables under it."""
    return [
        '<section id="comparison">',
        "<h2>Comparison</h2>",
        f"<p>{escape(note)}</p>",
        markdown_table_html(markdown, wide=True),
        *(line for block in blocks for line in table_block_html(block)),
        "</section>",
    ]


def _nav(names: list[str], curves: str, present: set[str], last: list[tuple[str, str]]) -> str:
    """The header's links to the page's sections: the comparison, tuning where ``present``, the
    curves (linked as ``curves``), the optional sections ``present``, each method, then ``last``."""
    links = [
        ("comparison", "comparison"),
        *([("tuning", "tuning")] if "tuning" in present else []),
        ("curves", curves),
        *[(anchor, label) for anchor, label in OPTIONAL_LINKS if anchor in present],
        *[(f"method-{n}", n) for n in names],
        *last,
    ]
    return " ".join(f'<a href="#{escape(anchor)}">{escape(label)}</a>' for anchor, label in links)


def _comparison_note(score: str, text: bool, metric: Scoring | None, calibrated: bool) -> str:
    """What the comparison table's columns mean."""
    if text or (metric is not None and metric.higher_is_better):
        return (
            f"Test {score} (0-100, higher is better) at the check each run selects (its best dev "
            f"{score}), mean ± sample std over seeds; final is the last check's; the time to reach the "
            f"baseline's best dev {score} is a fraction of the baseline's; AUAC is the area under the "
            f"test-{score} curve over epochs divided by the epochs it spans, on the same 0-100 scale "
            f"(the mean test score over training); {P_NOTE}"
        )
    note = (
        "Test error (%) at the check each run selects, mean ± sample std over seeds; the time to "
        "reach the baseline's best dev error is a fraction of the baseline's; AUAC is the area under "
        f"the test-accuracy curve per epoch; {P_NOTE}"
    )
    if calibrated:  # the runs recorded calibration: the table shows it too
        note += (
            " ECE (%, lower is better) is the expected calibration error of the test predictions "
            "at the selected check (15 equal-width confidence bins) and NLL their mean negative "
            "log-likelihood (nats), each with Welch's p against the baseline; '-' for runs "
            "recorded without them."
        )
    if metric is not None and "test_macro_f1" in dict(metric.reported):
        note += (
            " Test macro-F1 (0-100, higher is better) is at the same check: the mean over the "
            "classes of each class's F1, so a small class counts as much as a large one."
        )
    return note


def curve_split(metric: Scoring | None) -> str | None:
    """``dev`` or ``test``: the split of the curves of a score (higher is better: BLEU, macro mAP);
    None for the curves of the test error."""
    if metric is None or not metric.higher_is_better:
        return None
    return "test" if metric.curve.startswith("test_") else "dev"


def _curves(curves_png: bytes, score: str, metric: Scoring | None) -> list[str]:
    """The curves section's heading, note and figure."""
    split = curve_split(metric)
    if split is not None:
        selects = ": the score that selects each run's check" if split == "dev" else ""
        return [
            f"<h2>{split.capitalize()} {escape(score)} curves</h2>",
            f"<p>{split.capitalize()} {escape(score)} (0-100, higher is better{selects}) "
            "against epochs: each seed thin, the mean over seeds bold.</p>",
            img(curves_png, f"{split} {score} against epochs for every method"),
        ]
    return [
        "<h2>Error curves</h2>",
        "<p>Test error against epochs: each seed thin, the mean over seeds bold.</p>",
        img(curves_png, "test error against epochs for every method"),
    ]


def _method_section(m: dict[str, Any], text: bool, top: int) -> list[str]:
    """One method's section: its heatmap and most similar labels (a text task's: nearest words)."""
    name = m["method"]
    parts = [f'<section id="method-{escape(name)}" class="method-section">', f"<h2>{escape(name)}</h2>"]
    if "missing" in m:
        return [*parts, f'<p class="note">{escape(m["missing"])}</p>', "</section>"]
    if "facets_png" in m:
        return [*parts, *facet_method_html(m, top), "</section>"]
    neighbours = {label: [(o, float(v)) for o, v in row[:top]] for label, row in m["most_similar"].items()}
    shown = max((len(row) for row in neighbours.values()), default=0)
    if text:
        command = ""
        if m.get("run_dir"):
            words = ["labelemb", "similar", m["run_dir"], "--labels", ",".join(neighbours)]
            words += ["--top", str(shown)] if shown != 5 else []
            command = f"<p>What <code>{escape(shlex.join(words))}</code> prints.</p>"
        return [
            *parts,
            f"<p>Seed {escape(m['seed'])}, label representation: {escape(m['source'])}.</p>",
            f"<h3>Nearest words of the {len(neighbours)} most frequent target words (top {shown})</h3>",
            markdown_table_html(similar_table(neighbours, "word")),
            command,
            "</section>",
        ]
    return [
        *parts,
        f"<p>Seed {escape(m['seed'])}, label representation: {escape(m['source'])}.</p>",
        '<div class="method">',
        "<figure>",
        img(m["heatmap_png"], f"label similarity heatmap of {name} seed {m['seed']}"),
        "</figure>",
        "<div>",
        f"<h3>Most similar labels (top {shown})</h3>",
        markdown_table_html(similar_table(neighbours)),
        "</div>",
        "</div>",
        "</section>",
    ]


def _wordnet_section(
    wordnet_by_method: dict[str, dict[str, Any]], wordnet_absent: str, names: list[str]
) -> list[str]:
    """The WordNet correlation of every method, or why there is none."""
    parts = ['<section id="wordnet">', "<h2>WordNet correlation</h2>"]
    if wordnet_by_method:
        parts += [
            "<p>Kendall's tau-b between the WordNet path distances of the classes and the distances "
            "of their label representations, averaged over classes (LwAL, Eq. 4); mean ± std over "
            "every seed of the method.</p>",
            wordnet_table_html(wordnet_by_method, names),
        ]
    else:
        parts.append(f'<p class="note">{escape(wordnet_absent)}</p>')
    parts.append("</section>")
    return parts
