"""`labelemb report`: one self-contained HTML page for a comparison directory.

The page holds the comparison table, the error curves, the calibration of each method's test
predictions at the selected checks (classification runs that recorded it): its table and its
reliability diagram (seeds pooled), raw and after temperature scaling side by side; how well each
method knows when it is wrong (classification runs judged on their selected weights, their
``evaluation.json``): the selective-classification, conformal and out-of-distribution tables and
the risk-coverage curves of the test split (each seed light, the mean bold); how each method
fares under shift (classification runs scored on corrupted copies of their test split, their
``shift.json``): its table and the error against the severity of the corruption; each method's
similarity heatmap and nearest labels (for its lowest seed) and the WordNet correlation of each
method over all its seeds. Every picture is a PNG embedded as a ``data:``
URI and the style sheet is inline, so the file opens offline and can be mailed or archived alone.

A comparison of text runs (BLEU or ROUGE, whose labels are a vocabulary of thousands of words)
speaks of its own score, higher is better, on its 0-100 scale; its curves are of the dev score;
each method shows the nearest words of the most frequent target words (what ``labelemb similar
RUN_DIR --labels a,b`` prints), or says in one line that it has no label representation; there is
no heatmap and no WordNet section.

Nothing here computes a statistic or draws a figure itself: the table comes from
:func:`~labelemb.analysis.compare.comparison_rows` and
:func:`~labelemb.analysis.comparison_table.format_markdown`, the curves from
:func:`~labelemb.analysis.curves.plot_error_curves`, the risk-coverage curves from
:func:`~labelemb.analysis.curves.plot_risk_coverage`, the error against severity from
:func:`~labelemb.analysis.curves.plot_error_severity`, the reliability diagrams from
:func:`~labelemb.analysis.reliability.plot_reliability`, the heatmaps, nearest labels
and WordNet numbers from :mod:`labelemb.analysis.analyze`, whose files are kept in
``<experiment>/analysis/``.
"""

from __future__ import annotations

import datetime
import json
import shlex
from pathlib import Path
from typing import Any

from ..rundir import RunDir, write_text
from ..training import describe_seeds
from ..version import __version__
from .analyze import analyze, summarize_wordnet, wordnet_correlation
from .beyond_error import beyond_error_blocks, row_ood_sets
from .calibration_table import calibration_table
from .compare import BASELINE, Run, comparison_metric, comparison_rows, load_runs
from .comparison_table import format_markdown
from .curves import (
    has_memorisation,
    plot_error_curves,
    plot_error_severity,
    plot_memorisation,
    plot_risk_coverage,
    risk_curve,
    why_no_risk_curve,
)
from .noise_table import disputed_block, noise_block
from .provenance import code_note
from .reference_table import read_reference, reference_blocks, with_reference
from .reliability import plot_reliability
from .report_facets import cached_facets, facet_entry, facets_over_seeds
from .report_html import escape
from .report_noise import NoisyLabels, label_issues_links
from .report_page import BeyondError, render_report
from .report_shift import UnderShift
from .report_sources import check_analysis_current, record_analysed_runs
from .representation import NoRepresentation, run_representation
from .shift_table import shift_block
from .similarity import frequent_words, label_indices, nearest_labels, similar_table
from .tag_table import tag_blocks
from .tuning import HISTORY_FILE, format_tuning, plot_tuning_history, read_tuning, tuning_notes, tuning_rows

REPORT_FILE = "report.html"
ANALYSIS_DIR = "analysis"
CURVES_FILE = "curves.png"
RELIABILITY_FILE = "reliability.png"
RISK_COVERAGE_FILE = "risk-coverage.png"
ERROR_SEVERITY_FILE = "error-severity.png"
MEMORISATION_FILE = "memorisation.png"
#: The WordNet correlation of every seed (``analysis.json`` has the representative seeds only).
WORDNET_FILE = "wordnet-all-seeds.json"

#: How many of a text run's most frequent target words get their nearest words shown.
FREQUENT_WORDS = 10


def _run_dir(experiment_dir: Path, run: Run) -> Path:
    path = experiment_dir / run.method / f"seed{run.seed}"
    if not RunDir(path).is_finished():
        raise FileNotFoundError(f"expected the run of {run.method} seed {run.seed} in {path}")
    return path


def _absent_reason(results: list[dict[str, Any]]) -> str:
    reasons = sorted({r["wordnet"]["skipped"] for r in results if "skipped" in r.get("wordnet", {})})
    if reasons:
        return "No WordNet correlation: " + "; ".join(reasons) + "."
    if results:
        return "No WordNet correlation: tau-b is undefined for every run (constant distance vectors)."
    return "No WordNet correlation: the runs were not analysed."


def _analyse(
    experiment_dir: Path, runs: dict[str, list[Run]], analysis_dir: Path, top: int, data_dir: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Analyse the lowest seed of each method, then the WordNet correlation (or the facet
    agreement, for tags in facets) of the other seeds."""
    representatives = [_run_dir(experiment_dir, method_runs[0]) for method_runs in runs.values()]
    summary = analyze(representatives, analysis_dir, top=top, data_dir=data_dir)
    results = [{"method": r["method"], "seed": r["seed"], "wordnet": r["wordnet"]} for r in summary["runs"]]
    mapped = {r["method"] for r in summary["runs"] if "skipped" not in r["wordnet"]}
    for method, method_runs in runs.items():
        if method not in mapped:  # no mapping for this dataset (or no NLTK): the same for every seed
            continue
        for run in method_runs[1:]:
            rep = run_representation(_run_dir(experiment_dir, run), data_dir=data_dir)
            results.append({"method": run.method, "seed": run.seed, "wordnet": wordnet_correlation(rep)})
    wordnet = {"runs": results, "wordnet_by_method": summarize_wordnet(results)}
    (analysis_dir / WORDNET_FILE).write_text(json.dumps(wordnet, indent=2) + "\n")
    others = [(run.method, _run_dir(experiment_dir, run)) for rs in runs.values() for run in rs[1:]]
    return summary["runs"], wordnet, facets_over_seeds(summary["runs"], others, analysis_dir, data_dir)


def _cached_analysis(analysis_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """What an earlier report (or ``labelemb analyze``) left in ``analysis_dir``."""
    summary_path, wordnet_path = analysis_dir / "analysis.json", analysis_dir / WORDNET_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"runs": []}
    if wordnet_path.is_file():
        wordnet = json.loads(wordnet_path.read_text())
    else:
        wordnet = {"runs": summary["runs"], "wordnet_by_method": summary.get("wordnet_by_method", {})}
    return summary["runs"], wordnet, cached_facets(analysis_dir)


def _analyse_text(
    experiment_dir: Path, runs: dict[str, list[Run]], analysis_dir: Path, top: int, data_dir: str | None
) -> list[dict[str, Any]]:
    """The nearest words of the most frequent target words in the lowest seed of each method.

    Only the rows of those words are formed (softmax(e) of a compressed embedding, never the
    m x m table): what ``labelemb similar RUN_DIR --labels ...`` prints. A run without a label
    representation gets ``absent``, why, in one sentence.
    """
    results = []
    for method_runs in runs.values():
        run = method_runs[0]
        run_dir = _run_dir(experiment_dir, run)
        out = analysis_dir / f"{run.method}-seed{run.seed}"
        out.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {"method": run.method, "seed": run.seed, "run_dir": str(run_dir)}
        try:
            rep = run_representation(run_dir, data_dir=data_dir)
        except NoRepresentation as error:
            result["absent"] = f"Seed {run.seed}: {error.reason}"
        else:
            words = frequent_words(rep.class_names, FREQUENT_WORDS)
            neighbours = nearest_labels(run_dir, rep, label_indices(words, rep.class_names), top=top)
            result.update(
                dataset=rep.dataset,
                source=rep.source,
                classes=words,
                most_similar={k: [[n, v] for n, v in row] for k, row in neighbours.items()},
            )
            (out / "similar.md").write_text(similar_table(neighbours, "word") + "\n")
        (out / "analysis.json").write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
    (analysis_dir / "analysis.json").write_text(json.dumps({"runs": results}, indent=2) + "\n")
    return results


def _method_entry(
    method: str, seed: int, results: list[dict[str, Any]], analysis_dir: Path, text: bool = False
) -> dict[str, Any]:
    found = [r for r in results if r["method"] == method and r["seed"] == seed]
    if text and found and "absent" in found[0]:
        return {"method": method, "missing": found[0]["absent"]}
    if text and found and "most_similar" in found[0]:
        result = found[0]
        return {
            "method": method,
            "seed": seed,
            "source": result["source"],
            "most_similar": result["most_similar"],
            "run_dir": result.get("run_dir"),
        }
    faceted = facet_entry(found[0], analysis_dir / f"{method}-seed{seed}") if found and not text else None
    if faceted is not None:
        return faceted
    heatmap = analysis_dir / f"{method}-seed{seed}" / "heatmap.png"
    if text or not found or not heatmap.is_file():
        return {
            "method": method,
            "missing": f"Seed {seed} of {method} has not been analysed: run `labelemb report` "
            "without --no-analysis.",
        }
    result = found[0]
    return {
        "method": method,
        "seed": seed,
        "source": result["source"],
        "heatmap_png": heatmap.read_bytes(),
        "most_similar": result["most_similar"],
    }


def _command(
    experiment_dir: Path, output: Path | None, top: int, data_dir: str | None, analyze_runs: bool
) -> str:
    words = ["labelemb", "report", str(experiment_dir)]
    if output is not None:
        words += ["--output", str(output)]
    if top != 5:
        words += ["--top", str(top)]
    if data_dir:
        words += ["--data-dir", str(data_dir)]
    if not analyze_runs:
        words.append("--no-analysis")
    return shlex.join(words)


def _setup(runs: dict[str, list[Run]]) -> str:
    summaries = [run.summary for method_runs in runs.values() for run in method_runs]

    def values(key: str) -> str:
        return ", ".join(sorted({str(s[key]) for s in summaries if s.get(key) not in (None, "")})) or "?"

    seeds = sorted({run.seed for method_runs in runs.values() for run in method_runs})
    epochs = values("epochs")
    return (
        f"Dataset {values('dataset')}, model {values('model')}, {plural(epochs, 'epoch')}; "
        f"{plural(len(runs), 'method')}, {plural(len(summaries), 'run')} "
        f"({describe_seeds(seeds)}). {code_note(runs)}"
    )


def _tuning(experiment_dir: Path) -> dict[str, Any] | None:
    """A tuned experiment's table, history figure and how it was tuned (None if it was not)."""
    record = read_tuning(experiment_dir)
    if record is None:
        return None
    rows, scoring = tuning_rows(experiment_dir, record)
    history = plot_tuning_history(record, experiment_dir / ANALYSIS_DIR / HISTORY_FILE)
    objective = record["objective"]
    direction = "higher" if objective["higher_is_better"] else "lower"
    note = (
        f"Each method with something to search had {plural(record['trials'], 'trial')} (Optuna's TPE"
        f"{', median pruning' if record['prune'] else ''}) on seed {record['tune_seed']}, judged by its "
        f"{objective['name']} at the selected check ({direction} is better); then its default and its "
        "best setting trained on the fresh "
        f"{describe_seeds(record['seeds'])}. {scoring.name.capitalize()} mean ± sample std over those seeds; "
        "p is Welch's t-test of the tuned setting against tuned onehot and against its own default."
    )
    note = " ".join([note, *tuning_notes(rows, record)])  # what tuning.md says under its table
    return {
        "markdown": format_tuning(rows, scoring, objective["name"]),
        "history_png": history.read_bytes(),
        "note": note,
    }


def _beyond_error(
    experiment_dir: Path, runs: dict[str, list[Run]], rows: list[dict[str, Any]], analysis_dir: Path
) -> BeyondError | None:
    """The tables of the runs' evaluations and their risk-coverage figure, with the runs it leaves
    out and why; None where no run was evaluated (a text comparison, runs from before)."""
    blocks = beyond_error_blocks(rows, BASELINE, row_ood_sets(rows))
    title = experiment_dir.resolve().name
    figure = plot_risk_coverage(runs, analysis_dir / RISK_COVERAGE_FILE, title=title)
    if not blocks and figure is None:
        return None
    left_out = [
        f"{run.method} seed {run.seed} ({why_no_risk_curve(run)})"
        for method_runs in runs.values()
        for run in method_runs
        if risk_curve(run) is None
    ]
    command = shlex.join(["labelemb", "evaluate", str(experiment_dir), "--refresh"])
    return BeyondError(blocks, None if figure is None else figure.read_bytes(), left_out, command)


def _under_shift(
    experiment_dir: Path, runs: dict[str, list[Run]], rows: list[dict[str, Any]], analysis_dir: Path
) -> UnderShift | None:
    """The table of the runs' shift records and their error against severity, with the runs
    without a record; None where no run was shifted."""
    block = shift_block(rows, BASELINE)
    if block is None:
        return None
    title = experiment_dir.resolve().name
    figure = plot_error_severity(runs, analysis_dir / ERROR_SEVERITY_FILE, title=title)
    left_out = [
        f"{r.method} seed {r.seed}" for method_runs in runs.values() for r in method_runs if r.shift is None
    ]
    command = shlex.join(["labelemb", "shift", str(experiment_dir)])
    return UnderShift(block, None if figure is None else figure.read_bytes(), left_out, command)


def _noisy_labels(
    experiment_dir: Path,
    runs: dict[str, list[Run]],
    rows: list[dict[str, Any]],
    analysis_dir: Path,
    page: Path,
) -> NoisyLabels | None:
    """The tables of runs trained on noisy labels (or with disputed test labels), their memorisation
    curves and links to the label-issues pages (relative to ``page``'s folder); None where none."""
    blocks = [b for b in (noise_block(rows, BASELINE), disputed_block(rows, BASELINE)) if b is not None]
    links = label_issues_links(experiment_dir, page.parent)
    if not blocks and not links:
        return None
    figure = None
    if has_memorisation(runs):
        path = plot_memorisation(runs, analysis_dir / MEMORISATION_FILE, title=experiment_dir.resolve().name)
        figure = path.read_bytes()
    return NoisyLabels(blocks, figure, links)


def plural(count: int | str, noun: str) -> str:
    """``1 epoch``, ``3 epochs``, ``1, 3 epochs``."""
    return f"{count} {noun}" if str(count) == "1" else f"{count} {noun}s"


def build_report(
    experiment_dir: str | Path,
    output: str | Path | None = None,
    *,
    top: int = 5,
    data_dir: str | None = None,
    analyze_runs: bool = True,
) -> Path:
    """Write one self-contained HTML page about the runs in ``experiment_dir``; return its path.

    The page goes to ``output`` (default ``experiment_dir/report.html``); the curves figure and the
    analysis files go to ``experiment_dir/analysis/``. With ``analyze_runs=False`` the analysis
    already there is reused and not recomputed, unless a run it was made from has changed since
    (:class:`~labelemb.analysis.report_sources.StaleAnalysis`).
    """

    experiment_dir = Path(experiment_dir)
    output_path = Path(output) if output is not None else experiment_dir / REPORT_FILE
    analysis_dir = experiment_dir / ANALYSIS_DIR
    runs = load_runs(experiment_dir)
    metric = comparison_metric(runs)
    text = metric.labels == "vocabulary"  # a vocabulary for labels: no WordNet
    # A text run's analysis reads its lowest seed only; an image run's WordNet and facets, all seeds.
    analysed = [_run_dir(experiment_dir, run) for rs in runs.values() for run in (rs[:1] if text else rs)]
    if not analyze_runs:
        check_analysis_current(analysis_dir, analysed, experiment_dir)
    rows = comparison_rows(runs)  # the baseline first, then by name: the order of the page
    # The calibration table has a section of its own, beside the reliability diagrams.
    comparison = format_markdown(rows, scoring=metric, calibration=False)
    reference = read_reference(experiment_dir)  # a text comparison's linear reference, or None
    comparison = with_reference(comparison, reference, metric)
    curves = plot_error_curves(runs, analysis_dir / CURVES_FILE, title=experiment_dir.resolve().name)
    in_page_order = {row["method"]: runs[row["method"]] for row in rows}
    reliability = plot_reliability(in_page_order, analysis_dir / RELIABILITY_FILE)
    if analyze_runs and text:
        results, wordnet, facets = _analyse_text(experiment_dir, runs, analysis_dir, top, data_dir), {}, {}
    elif analyze_runs:
        results, wordnet, facets = _analyse(experiment_dir, runs, analysis_dir, top, data_dir)
    else:
        results, wordnet, facets = _cached_analysis(analysis_dir)
    if analyze_runs:
        record_analysed_runs(analysis_dir, analysed)
    methods = [
        _method_entry(row["method"], runs[row["method"]][0].seed, results, analysis_dir, text) for row in rows
    ]
    tuning = _tuning(experiment_dir)
    command = _command(experiment_dir, None if output is None else output_path, top, data_dir, analyze_runs)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    made = (
        f"Made with <code>{escape(command)}</code> on {escape(now)} by labelemb {escape(__version__)}; "
        f"the analysis files are in <code>{escape(analysis_dir)}</code>."
    )
    page = render_report(
        title=f"labelemb report: {experiment_dir.resolve().name}",
        made=made,
        setup=_setup(runs),
        comparison_markdown=comparison,
        curves_png=curves.read_bytes(),
        reliability_png=None if reliability is None else reliability.read_bytes(),
        methods=methods,
        wordnet_by_method={} if text else wordnet["wordnet_by_method"],
        facets_by_method=facets,
        comparison_blocks=[*reference_blocks(reference), *tag_blocks(rows, BASELINE)],
        wordnet_absent="" if text else _absent_reason(wordnet["runs"]),
        top=top,
        metric=metric,
        tuning=tuning,
        calibration=calibration_table(rows),
        beyond_error=_beyond_error(experiment_dir, in_page_order, rows, analysis_dir),
        under_shift=_under_shift(experiment_dir, in_page_order, rows, analysis_dir),
        noisy_labels=_noisy_labels(experiment_dir, in_page_order, rows, analysis_dir, output_path),
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(output_path, page)
    return output_path
