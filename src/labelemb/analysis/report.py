"""`labelemb report`: one self-contained HTML page for a comparison directory.

The page holds the comparison table, the error curves, each method's similarity heatmap and
nearest labels (for its lowest seed) and the WordNet correlation of each method over all its
seeds. Every picture is a PNG embedded as a ``data:`` URI and the style sheet is inline, so the
file opens offline and can be mailed or archived alone.

A comparison of text runs (BLEU or ROUGE, whose labels are a vocabulary of thousands of words)
speaks of its own score, higher is better, on its 0-100 scale; its curves are of the dev score;
each method shows the nearest words of the most frequent target words (what ``labelemb similar
RUN_DIR --labels a,b`` prints), or says in one line that it has no label representation; there is
no heatmap and no WordNet section.

Nothing here computes a statistic or draws a figure itself: the table comes from
:func:`~labelemb.analysis.compare.comparison_rows` and :func:`~labelemb.analysis.compare.format_markdown`,
the curves from :func:`~labelemb.analysis.curves.plot_error_curves`, the heatmaps, nearest labels
and WordNet numbers from :mod:`labelemb.analysis.analyze`, whose files are kept in
``<experiment>/analysis/``.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import shlex
from pathlib import Path
from typing import Any

from ..rundir import RunDir
from ..train.seed import describe_seeds
from .analyze import analyze, summarize_wordnet, wordnet_correlation
from .compare import Metric, Run, comparison_metric, comparison_rows, format_markdown, load_runs, score_name
from .curves import plot_error_curves
from .representation import NoRepresentation, run_representation
from .similarity import frequent_words, label_indices, nearest_labels, similar_table

REPORT_FILE = "report.html"
ANALYSIS_DIR = "analysis"
CURVES_FILE = "curves.png"
#: The WordNet correlation of every seed (``analysis.json`` has the representative seeds only).
WORDNET_FILE = "wordnet-all-seeds.json"

SECTION_IDS = ("comparison", "curves", "wordnet")
#: How many of a text run's most frequent target words get their nearest words shown.
FREQUENT_WORDS = 10

CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1150px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
p.made { color: #666; font-size: 0.9em; margin-top: 0; }
code { background: #f3f3f3; padding: 0 0.25em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.method { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.method figure { margin: 0; max-width: 560px; }
.note { color: #666; }
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def markdown_table_html(markdown: str) -> str:
    """A GitHub-style Markdown table (header, rule, rows) as an HTML table, every cell escaped.

    Columns whose rule is ``---:`` are right-aligned (``class="num"``), as in the Markdown.
    """
    lines = [line.strip() for line in markdown.strip().splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError(f"not a Markdown table: {markdown[:80]!r}")

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split("|")]

    header, rule, body = cells(lines[0]), cells(lines[1]), [cells(line) for line in lines[2:]]
    numeric = [r.endswith(":") and not r.startswith(":") for r in rule]

    def row(values: list[str], tag: str) -> str:
        out = []
        for i, value in enumerate(values):
            attr = ' class="num"' if i < len(numeric) and numeric[i] else ""
            out.append(f"<{tag}{attr}>{_esc(value)}</{tag}>")
        return "<tr>" + "".join(out) + "</tr>"

    return (
        "<table>\n<thead>"
        + row(header, "th")
        + "</thead>\n<tbody>\n"
        + "\n".join(row(values, "td") for values in body)
        + "\n</tbody>\n</table>"
    )


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` for the bytes of a PNG file."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str) -> str:
    return f'<img src="{png_data_uri(data)}" alt="{_esc(alt)}">'


def wordnet_table_html(wordnet_by_method: dict[str, dict[str, Any]], methods: list[str]) -> str:
    """Kendall's tau-b against WordNet per method: mean ± std over the seeds that have one."""
    rows = []
    for method in methods:
        wn = wordnet_by_method.get(method)
        value = f"{wn['mean']:.3f} ± {wn['std']:.3f}" if wn else "-"
        runs = wn["runs"] if wn else 0
        rows.append(
            f'<tr><td>{_esc(method)}</td><td class="num">{runs}</td><td class="num">{_esc(value)}</td></tr>'
        )
    return (
        '<table>\n<thead><tr><th>method</th><th class="num">seeds</th>'
        '<th class="num">tau-b (mean ± std)</th></tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


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
    metric: Metric | None = None,
) -> str:
    """The HTML page; every text is escaped here except ``made``, which is HTML already.

    ``methods``: one dict per method with ``method``, and, when it was analysed, ``seed``,
    ``source``, ``heatmap_png`` (bytes) and ``most_similar`` ({label: [[other, value]]}); otherwise
    ``missing`` (why not). ``wordnet_absent`` is the sentence shown when no method has a WordNet
    correlation. ``metric``: the comparison's (default: the test error of classification); for
    a text task's score (BLEU, ROUGE) the page speaks of that score, a method's entry has no
    heatmap but may have ``run_dir`` (to show the `labelemb similar` that prints its table), and
    there is no WordNet section.
    """
    text = metric is not None and metric.key != "test_error"
    score = score_name(metric.key) if metric is not None else ""
    names = [m["method"] for m in methods]
    nav = " ".join(
        f'<a href="#{_esc(anchor)}">{_esc(label)}</a>'
        for anchor, label in [
            ("comparison", "comparison"),
            ("curves", f"dev {score} curves" if text else "error curves"),
            *[(f"method-{n}", n) for n in names],
            *([] if text else [("wordnet", "WordNet")]),
        ]
    )
    if text:
        comparison_note = (
            f"Test {score} (0-100, higher is better) at the check each run selects (its best dev "
            f"{score}), mean ± sample std over seeds; final is the last check's; the time to reach the "
            f"baseline's best dev {score} is a fraction of the baseline's; AUAC is the area under the "
            f"test-{score} curve over epochs divided by the epochs it spans, on the same 0-100 scale "
            "(the mean test score over training); p is Welch's t-test against the baseline."
        )
        curves = [
            f"<h2>Dev {_esc(score)} curves</h2>",
            f"<p>Dev {_esc(score)} (0-100, higher is better: the score that selects each run's check) "
            "against epochs: each seed thin, the mean over seeds bold.</p>",
            _img(curves_png, f"dev {score} against epochs for every method"),
        ]
    else:
        comparison_note = (
            "Test error (%) at the check each run selects, mean ± sample std over seeds; the time to "
            "reach the baseline's best dev error is a fraction of the baseline's; AUAC is the area under "
            "the test-accuracy curve per epoch; p is Welch's t-test against the baseline."
        )
        curves = [
            "<h2>Error curves</h2>",
            "<p>Test error against epochs: each seed thin, the mean over seeds bold.</p>",
            _img(curves_png, "test error against epochs for every method"),
        ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="made">{made}</p>',
        f"<p>{_esc(setup)}</p>",
        f"<nav>{nav}</nav>",
        "</header>",
        '<section id="comparison">',
        "<h2>Comparison</h2>",
        f"<p>{_esc(comparison_note)}</p>",
        markdown_table_html(comparison_markdown),
        "</section>",
        '<section id="curves">',
        *curves,
        "</section>",
    ]
    for m in methods:
        name = m["method"]
        parts += [f'<section id="method-{_esc(name)}" class="method-section">', f"<h2>{_esc(name)}</h2>"]
        if "missing" in m:
            parts += [f'<p class="note">{_esc(m["missing"])}</p>', "</section>"]
            continue
        neighbours = {
            label: [(o, float(v)) for o, v in row[:top]] for label, row in m["most_similar"].items()
        }
        shown = max((len(row) for row in neighbours.values()), default=0)
        if text:
            command = ""
            if m.get("run_dir"):
                words = ["labelemb", "similar", m["run_dir"], "--labels", ",".join(neighbours)]
                words += ["--top", str(shown)] if shown != 5 else []
                command = f"<p>What <code>{_esc(shlex.join(words))}</code> prints.</p>"
            parts += [
                f"<p>Seed {_esc(m['seed'])}, label representation: {_esc(m['source'])}.</p>",
                f"<h3>Nearest words of the {len(neighbours)} most frequent target words (top {shown})</h3>",
                markdown_table_html(similar_table(neighbours, "word")),
                command,
                "</section>",
            ]
            continue
        parts += [
            f"<p>Seed {_esc(m['seed'])}, label representation: {_esc(m['source'])}.</p>",
            '<div class="method">',
            "<figure>",
            _img(m["heatmap_png"], f"label similarity heatmap of {name} seed {m['seed']}"),
            "</figure>",
            "<div>",
            f"<h3>Most similar labels (top {shown})</h3>",
            markdown_table_html(similar_table(neighbours)),
            "</div>",
            "</div>",
            "</section>",
        ]
    if not text:  # WordNet relates the class names of image data sets, not a vocabulary
        parts += ['<section id="wordnet">', "<h2>WordNet correlation</h2>"]
        if wordnet_by_method:
            parts += [
                "<p>Kendall's tau-b between the WordNet path distances of the classes and the distances "
                "of their label representations, averaged over classes (LwAL, Eq. 4); mean ± std over "
                "every seed of the method.</p>",
                wordnet_table_html(wordnet_by_method, names),
            ]
        else:
            parts.append(f'<p class="note">{_esc(wordnet_absent)}</p>')
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


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
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Analyse the lowest seed of each method, then the WordNet correlation of the other seeds."""
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
    return summary["runs"], wordnet


def _cached_analysis(analysis_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What an earlier report (or ``labelemb analyze``) left in ``analysis_dir``."""
    summary_path, wordnet_path = analysis_dir / "analysis.json", analysis_dir / WORDNET_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {"runs": []}
    if wordnet_path.is_file():
        wordnet = json.loads(wordnet_path.read_text())
    else:
        wordnet = {"runs": summary["runs"], "wordnet_by_method": summary.get("wordnet_by_method", {})}
    return summary["runs"], wordnet


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
        f"({describe_seeds(seeds)})."
    )


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
    already there is reused and not recomputed.
    """
    from .. import __version__
    from ..rundir import write_text

    experiment_dir = Path(experiment_dir)
    output_path = Path(output) if output is not None else experiment_dir / REPORT_FILE
    analysis_dir = experiment_dir / ANALYSIS_DIR
    runs = load_runs(experiment_dir)
    metric = comparison_metric(runs)
    text = metric.key != "test_error"  # BLEU or ROUGE: a vocabulary for labels, no WordNet
    rows = comparison_rows(runs)  # the baseline first, then by name: the order of the page
    comparison = format_markdown(rows)
    curves = plot_error_curves(runs, analysis_dir / CURVES_FILE, title=experiment_dir.resolve().name)
    if analyze_runs and text:
        results, wordnet = _analyse_text(experiment_dir, runs, analysis_dir, top, data_dir), {}
    elif analyze_runs:
        results, wordnet = _analyse(experiment_dir, runs, analysis_dir, top, data_dir)
    else:
        results, wordnet = _cached_analysis(analysis_dir)
    methods = [
        _method_entry(row["method"], runs[row["method"]][0].seed, results, analysis_dir, text) for row in rows
    ]
    command = _command(experiment_dir, None if output is None else output_path, top, data_dir, analyze_runs)
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    made = (
        f"Made with <code>{_esc(command)}</code> on {_esc(now)} by labelemb {_esc(__version__)}; "
        f"the analysis files are in <code>{_esc(analysis_dir)}</code>."
    )
    page = render_report(
        title=f"labelemb report: {experiment_dir.resolve().name}",
        made=made,
        setup=_setup(runs),
        comparison_markdown=comparison,
        curves_png=curves.read_bytes(),
        methods=methods,
        wordnet_by_method={} if text else wordnet["wordnet_by_method"],
        wordnet_absent="" if text else _absent_reason(wordnet["runs"]),
        top=top,
        metric=metric,
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(output_path, page)
    return output_path
