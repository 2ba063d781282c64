"""The LwAL paper's Table 1 / Table 5 columns for a comparison's runs: best test accuracy, the
test accuracy at the best dev check, the percent of STD's time to reach STD's best test accuracy,
and AUAC.

    python examples/lwal_table.py runs/lwal-fashion-mnist-efficientnet
    python examples/lwal_table.py runs/lwal-fashion-mnist-efficientnet --baseline onehot --axis epochs

``runs/<experiment>`` is the folder ``labelemb compare`` wrote (``<method>/seed<N>/``). Columns:

- best test acc. %: per seed, the highest test accuracy (100 - test error) over the checks
  (the paper's "best test accuracy"); mean ± std over seeds;
- at best dev %: the test accuracy at the best dev check (what ``labelemb compare`` reports);
- % of STD's time: when the seed-mean test-accuracy curve first reaches the baseline's best
  seed-mean test accuracy, as a percent of when the baseline's own curve reaches it ("never" if
  it does not); ``--axis seconds`` measures training seconds (noisy on a shared machine),
  ``--axis epochs`` the data seen;
- AUAC: the area under the test-accuracy curve (0..1) over epochs, divided by the epochs.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from labelemb.analysis.compare import Run, auac, load_runs, mean_curve, time_to_reach


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


def table_rows(runs: dict[str, list[Run]], baseline: str, axis: str) -> list[dict[str, str]]:
    """One row per method, the baseline first, as strings for the markdown table."""
    # The curves are of the test error: the best accuracy is the lowest error.
    base_error, _, _ = mean_curve(runs[baseline], "test_error")
    target = float(base_error.min())
    base_time = time_to_reach(runs[baseline], target, "test_error", axis=axis)
    rows = []
    for method in sorted(runs, key=lambda name: (name != baseline, name)):
        method_runs = runs[method]
        reach = time_to_reach(method_runs, target, "test_error", axis=axis)
        rows.append(
            {
                "method": method,
                "seeds": str(len(method_runs)),
                "best": mean_std([max(100.0 - r["test_error"] for r in run.records) for run in method_runs]),
                "at_dev": mean_std([100.0 - run.summary["selected_test_error"] for run in method_runs]),
                "time": "never" if reach is None or not base_time else f"{100.0 * reach / base_time:.0f}",
                "auac": f"{statistics.fmean(auac(run) for run in method_runs):.4f}",
            }
        )
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    lines = [
        "| method | seeds | best test acc. % | at best dev % | % of STD's time | AUAC |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    columns = ("method", "seeds", "best", "at_dev", "time", "auac")
    lines += ["| " + " | ".join(row[column] for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="the folder labelemb compare wrote")
    parser.add_argument("--baseline", default="onehot", help="the method called STD (default onehot)")
    parser.add_argument("--axis", choices=("seconds", "epochs"), default="seconds")
    args = parser.parse_args(argv)
    runs = load_runs(args.experiment)
    if args.baseline not in runs:
        parser.error(f"no {args.baseline} runs under {args.experiment}: it has {', '.join(sorted(runs))}")
    print(markdown(table_rows(runs, args.baseline, args.axis)))


if __name__ == "__main__":
    main()
