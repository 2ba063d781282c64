"""What a tuned comparison leaves: the table of default against tuned settings, and each study's history.

``labelemb tune`` records its studies in ``<experiment>/tuning.json`` (every trial, its dev score
and values, the best setting); the default setting's runs at the fresh seeds are the experiment's
own ``<method>/seed<N>`` (what ``compare`` writes), the best setting's are under
``tuned/trial<NNN>/<method>/seed<N>`` (trial NNN: the one whose values they train with). This
module reads those files only: no Optuna.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..metrics.figures import SCALED, figure_of
from ..metrics.figures import figure as declared
from ..rundir import write_text
from ..tasks import Scoring
from .beyond_error import ood_sets
from .compare import BASELINE, NO_SPREAD_NOTE, Run, comparison_metric, load_runs, mean_std, welch_p
from .plotting import plt

TUNING_FILE = "tuning.json"
TUNING_TABLE = "tuning.md"
HISTORY_FILE = "tuning-history.png"
TUNED_FOLDER = "tuned"
#: The line above the tuning table's calibration table.
TUNING_CALIBRATION_INTRO = (
    "Calibration of the test predictions at the fresh seeds (mean ± std), with the default and the "
    "tuned setting: ECE % (15 equal-width bins) and NLL raw, and scaled by the temperature T each "
    "run fit on its dev split (compare's tables have AdaECE, classwise ECE and Brier too)."
)


#: The line above the tuning table's table of the runs' evaluations.
TUNING_BEYOND_INTRO = (
    "Knowing when it is wrong at the fresh seeds (mean ± std; each run's evaluation.json): the test "
    "AURC of the max-softmax confidence (%, lower is better) and each OOD set's energy AUROC (%, "
    "higher is better), with the default and the tuned setting; '-': a run not evaluated."
)


def read_tuning(experiment_dir: str | Path) -> dict[str, Any] | None:
    """The experiment's tuning record (``tuning.json``), or None when it was not tuned."""
    path = Path(experiment_dir) / TUNING_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} cannot be read ({error}); run the same `labelemb tune` again to rewrite it"
        ) from None


def _at_seeds(runs: dict[str, list[Run]], seeds: list[int]) -> dict[str, list[Run]]:
    wanted = set(seeds)
    kept = {method: [r for r in method_runs if r.seed in wanted] for method, method_runs in runs.items()}
    return {method: method_runs for method, method_runs in kept.items() if method_runs}


def tuning_rows(experiment_dir: str | Path, record: dict[str, Any]) -> tuple[list[dict[str, Any]], Scoring]:
    """One row per tuned method: its trials, best dev score and values, and its test score at the
    fresh seeds with the default setting and with the tuned one; Welch's p of tuned against tuned
    onehot and of tuned against its own default. A method with nothing to search is its default."""
    experiment_dir = Path(experiment_dir)
    seeds = record["seeds"]
    default = _at_seeds(load_runs(experiment_dir), seeds)
    tuned: dict[str, list[Run]] = {}
    for method, study in record["methods"].items():
        if not study["space"]:
            if method in default:
                tuned[method] = default[method]  # nothing searched: the tuned setting is the default
            continue
        # The best trial's folder holds the runs of its values (other methods' best may share it).
        folder = experiment_dir / TUNED_FOLDER / f"trial{study['best_trial']:03d}"
        if (folder / method).is_dir():
            tuned.update(_at_seeds({method: load_runs(folder).get(method, [])}, seeds))
    scoring = comparison_metric({**default, **tuned})
    key = f"selected_{scoring.metric}"

    def scores(runs: dict[str, list[Run]], method: str) -> list[float]:
        return [r.summary[key] for r in runs.get(method, [])]

    base = scores(tuned, BASELINE)
    sets = ood_sets([r.evaluation for runs in (default, tuned) for m in runs.values() for r in m])
    rows = []
    for method, study in record["methods"].items():
        finished = [t for t in study["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        complete = [t["value"] for t in finished if t["state"] == "COMPLETE"]
        before, after = scores(default, method), scores(tuned, method)
        row: dict[str, Any] = {
            "method": method,
            "trials": len(finished),
            "pruned": sum(t["state"] == "PRUNED" for t in finished),
            "searched": ", ".join(study["space"]) or "-",
            "best_dev": study["best_value"],
            "values": study["best_params"],
            "best_is_default": bool(study.get("best_is_default")),
            # The trials' one score, when two or more finished and none was pruned.
            "same_score": complete[0]
            if len(complete) > 1 and len(set(complete)) == 1 and len(complete) == len(finished)
            else None,
            "default_adjusted": study.get("default_adjusted", {}),
            "default": mean_std(before) if before else None,
            "tuned": mean_std(after) if after else None,
            "seeds": len(after),
            "p_onehot": welch_p(after, base)
            if method != BASELINE and len(after) > 1 and len(base) > 1
            else None,
            "p_default": welch_p(after, before)
            if study["space"] and len(after) > 1 and len(before) > 1
            else None,
        }
        row["calibration"] = {
            "default": _calibration_means(default.get(method, [])),
            "tuned": _calibration_means(tuned.get(method, [])),
        }
        row["beyond"] = {
            "default": _beyond_values(default.get(method, []), sets),
            "tuned": _beyond_values(tuned.get(method, []), sets),
        }
        # A p left out because neither group's seeds vary (welch_p): the notes say so.
        row["no_spread"] = (row["p_onehot"] is None and _both_vary_not(after, base, method != BASELINE)) or (
            row["p_default"] is None and _both_vary_not(after, before, bool(study["space"]))
        )
        rows.append(row)
    rows.sort(key=lambda r: (r["method"] != BASELINE, r["method"]))
    return rows, scoring


#: The calibration the tuning table's second table shows (summary keys without ``selected_``):
#: column head and format, as declared (:mod:`labelemb.metrics.figures`). Raw, then scaled by the
#: temperature each run fit on its dev split.
TUNING_CALIBRATION = tuple(
    (key, figure_of(key).label + (" scaled" if key.endswith(SCALED) else ""), figure_of(key).fmt)  # type: ignore[union-attr]
    for key in ("test_ece", "test_ece_scaled", "test_nll", "test_nll_scaled", "temperature")
)


def _beyond_values(runs: list[Run], sets: list[str]) -> dict[str, list[float] | None]:
    """Each run's test AURC and each OOD set's energy AUROC (%), from its evaluation.json; None
    where a run lacks one (not evaluated)."""
    aurc, auroc = declared("selective_msp_aurc"), declared("ood_energy_auroc")
    figures = {"aurc": lambda e: e["test"][aurc.name]}
    for name in sets:
        figures[name] = lambda e, name=name: e["ood"][name]["figures"][auroc.name]
    values: dict[str, list[float] | None] = {}
    for key, read in figures.items():
        try:
            values[key] = [read(r.evaluation) for r in runs] if runs else None
        except (KeyError, TypeError):  # a run not evaluated, or a diverged one
            values[key] = None
    return values


def format_tuning_beyond(rows: list[dict[str, Any]]) -> str | None:
    """The default and the tuned setting judged beyond their error at the fresh seeds (mean ± std):
    test AURC, with Welch's p of tuned against tuned onehot, and each OOD set's energy AUROC;
    None where no run was evaluated."""
    keys = list(rows[0]["beyond"]["tuned"]) if rows else []
    if not any(row["beyond"][kind].get("aurc") for row in rows for kind in ("default", "tuned")):
        return None
    base = next((row["beyond"]["tuned"]["aurc"] for row in rows if row["method"] == BASELINE), None)
    aurc = declared("selective_msp_aurc").label
    heads = [f"default {aurc}", f"tuned {aurc}", f"p vs tuned {BASELINE}"]
    heads += [f"{kind} {name} AUROC %" for name in keys[1:] for kind in ("default", "tuned")]
    lines = ["| method | " + " | ".join(heads) + " |", "| --- |" + " ---: |" * len(heads)]
    for row in rows:
        default, tuned = row["beyond"]["default"], row["beyond"]["tuned"]
        compared = (
            row["method"] != BASELINE and base and tuned["aurc"] and min(len(base), len(tuned["aurc"])) > 1
        )
        cells = [_values_text(default["aurc"]), _values_text(tuned["aurc"])]
        cells.append(_p(welch_p(tuned["aurc"], base)) if compared else "-")
        cells += [_values_text(side[name]) for name in keys[1:] for side in (default, tuned)]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _values_text(values: list[float] | None) -> str:
    return "-" if not values else _mean_std_text(mean_std(values))


def _calibration_means(runs: list[Run]) -> dict[str, tuple[float, float] | None]:
    """Mean and std over seeds of each figure of :data:`TUNING_CALIBRATION` (None where a run lacks it)."""
    means: dict[str, tuple[float, float] | None] = {}
    for key, _, _ in TUNING_CALIBRATION:
        values = [r.summary.get(f"selected_{key}") for r in runs]
        means[key] = mean_std(values) if values and None not in values else None
    return means


def format_tuning_calibration(rows: list[dict[str, Any]]) -> str | None:
    """The calibration of the test predictions with the default and the tuned setting at the fresh
    seeds (mean ± std), raw and after temperature scaling; None where no run recorded it (a text
    task's sequences, runs from before)."""
    if not any(
        row.get("calibration", {}).get(kind, {}).get("test_ece")
        for row in rows
        for kind in ("default", "tuned")
    ):
        return None
    heads = [f"{kind} {head}" for kind in ("default", "tuned") for _, head, _ in TUNING_CALIBRATION]
    lines = [
        "| method | " + " | ".join(heads) + " |",
        "| --- |" + " ---: |" * len(heads),
    ]
    for row in rows:
        cells = [
            _mean_std_text(row["calibration"][kind][key], fmt)
            for kind in ("default", "tuned")
            for key, _, fmt in TUNING_CALIBRATION
        ]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _both_vary_not(scores: list[float], against: list[float], compared: bool) -> bool:
    """Whether two compared groups of two or more seeds each have no spread at all."""
    return compared and min(len(scores), len(against)) > 1 and len(set(scores)) == len(set(against)) == 1


def tuning_notes(rows: list[dict[str, Any]], record: dict[str, Any]) -> list[str]:
    """What the table's numbers do not say, a sentence each: a method whose trials all scored the
    same (its searched options never took effect within the budget), a budget that ends within
    the sampler's random start-up, a default setting that had to be fitted to the space."""
    dev_name = record["objective"]["name"]
    searched = [row for row in rows if row["searched"] != "-"]
    notes = []
    for row in searched:
        if row["same_score"] is not None:
            notes.append(
                f"{row['method']}: all {row['trials']} trials scored the same {dev_name} "
                f"({row['same_score']:.2f}): the searched options made no difference within this "
                "budget, so its tuned setting is one of equals, not a better one."
            )
    startup = record.get("sampler", {}).get("startup_trials")
    if startup:
        within: dict[int, list[str]] = {}
        for row in searched:
            if 0 < row["trials"] <= startup:
                within.setdefault(row["trials"], []).append(row["method"])
        for count, names in sorted(within.items()):
            notes.append(
                f"{', '.join(names)}: {count} {'trial ends' if count == 1 else 'trials end'} within the "
                f"TPE sampler's random start-up (its first {startup} trials are drawn at random, and the "
                "first trial is the default setting): a random search, not a guided one; TPE models "
                f"the results only with --trials above {startup}."
            )
    if any(row.get("no_spread") for row in rows):
        notes.append(NO_SPREAD_NOTE.format(baseline=f"tuned {BASELINE} (or the method's default)"))
    for row in searched:
        for key, change in sorted(row["default_adjusted"].items()):
            where = record["methods"][row["method"]]["space"].get(key, "?")
            if change["used"] is None:
                what = f"is not a value of the searched {where}; its default trial drew {key}"
            else:
                what = f"lies outside the searched {where}; its default trial used {_value(change['used'])}"
            notes.append(f"{row['method']}: its default {key} {_value(change['default'])} {what}.")
    return notes


def format_tuning(
    rows: list[dict[str, Any]], scoring: Scoring, dev_name: str, notes: list[str] | None = None
) -> str:
    """The tuned comparison as a markdown table (see :func:`tuning_rows`): the test figure at the
    fresh seeds (mean ± std) with the default and the tuned setting, and Welch's p of the tuned
    one against tuned onehot and against its own default; ``notes`` (:func:`tuning_notes`) as a
    list under it."""
    figure = f"{scoring.score_name} {scoring.unit}".strip()  # "error %", "BLEU"
    header = (
        f"| method | trials | best {dev_name} | chosen values | default {figure} | "
        f"tuned {figure} | change | p vs tuned onehot | p vs default |"
    )
    lines = [header, "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        trials = str(row["trials"]) + (f" ({row['pruned']} pruned)" if row["pruned"] else "")
        change = "-"
        if row["default"] is not None and row["tuned"] is not None:
            change = f"{row['tuned'][0] - row['default'][0]:+.2f}"
        lines.append(
            "| "
            + " | ".join(
                [
                    row["method"],
                    trials if row["searched"] != "-" else "0 (nothing to search)",
                    _number(row["best_dev"]),
                    ("default: " if row["best_is_default"] else "") + values_text(row["values"]),
                    _mean_std_text(row["default"]),
                    _mean_std_text(row["tuned"]),
                    change,
                    _p(row["p_onehot"]),
                    _p(row["p_default"]),
                ]
            )
            + " |"
        )
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mean_std_text(pair: tuple[float, float] | None, fmt: str = ".2f") -> str:
    return "-" if pair is None else f"{pair[0]:{fmt}} ± {pair[1]:{fmt}}"


def _p(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.2g}"


def values_text(params: dict[str, Any]) -> str:
    """A setting's values for people: ``epsilon 0.237, train.lr 0.00306`` (floats to 3 digits)."""
    if not params:
        return "default"
    return ", ".join(f"{key} {_value(value)}" for key, value in params.items())


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plot_tuning_history(record: dict[str, Any], path: str | Path) -> Path:
    """Each method's trials in order: the dev score of every trial (pruned ones hollow, at their
    last check) and the best so far; one panel per method."""
    higher = record["objective"]["higher_is_better"]
    studies = [(m, s) for m, s in record["methods"].items() if s["trials"]]
    columns = min(4, max(1, len(studies)))
    rows = max(1, math.ceil(len(studies) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(studies) :]:
        ax.set_visible(False)
    for ax, (method, study) in zip(axes.flat, studies):
        done = [t for t in study["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        complete = [t for t in done if t["state"] == "COMPLETE"]
        pruned = [t for t in done if t["state"] == "PRUNED" and t["checks"]]
        ax.plot([t["number"] for t in complete], [t["value"] for t in complete], "o", ms=4, label="trial")
        if pruned:
            last = [list(t["checks"].values())[-1] for t in pruned]
            ax.plot([t["number"] for t in pruned], last, "o", ms=4, mfc="none", label="pruned")
        best, xs, ys = None, [], []
        for t in sorted(complete, key=lambda t: t["number"]):
            if best is None or (t["value"] > best if higher else t["value"] < best):
                best = t["value"]
            xs.append(t["number"])
            ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", color="black", lw=1, label="best so far")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("trial", fontsize=8)
        ax.set_ylabel(record["objective"]["name"], fontsize=8)
        ax.tick_params(labelsize=7)
    if studies:
        axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_tuning(experiment_dir: str | Path) -> str:
    """Write ``tuning.md`` and the history figure for a tuned experiment; return the table."""
    experiment_dir = Path(experiment_dir)
    record = read_tuning(experiment_dir)
    if record is None:
        raise FileNotFoundError(f"{experiment_dir / TUNING_FILE} does not exist; run `labelemb tune` first")
    rows, scoring = tuning_rows(experiment_dir, record)
    table = format_tuning(rows, scoring, record["objective"]["name"], tuning_notes(rows, record))
    calibration = format_tuning_calibration(rows)
    if calibration is not None:
        table += f"\n\n{TUNING_CALIBRATION_INTRO}\n\n{calibration}"
    beyond = format_tuning_beyond(rows)
    if beyond is not None:
        table += f"\n\n{TUNING_BEYOND_INTRO}\n\n{beyond}"
    write_text(experiment_dir / TUNING_TABLE, table + "\n")
    plot_tuning_history(record, experiment_dir / HISTORY_FILE)
    return table
