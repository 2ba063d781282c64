"""The ``labelemb`` command: train, demo, similar."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .train import RunConfig

#: The embedded default experiment: no file, no network (scikit-learn's bundled 8x8 digits).
DEMO_CONFIG: dict[str, Any] = {
    "experiment": "demo-digits-mlp",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [500, 500]},
    "train": {"epochs": 30, "batch_size": 100, "lr": 1e-3},
    "selection": "best_dev",
}


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [3]; ``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ``"0-2,7"`` -> [0, 1, 2, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"seeds {text!r} must look like 3, 0-19 or 0,2,5 (whole numbers from 0)"
            ) from None
        if high < low:
            raise argparse.ArgumentTypeError(
                f"seed range {part.strip()!r} is reversed, so it holds no seed; write {high}-{low}"
            )
        seeds += range(low, high + 1)
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"seeds {text!r} name seed(s) {', '.join(map(str, repeated))} more than once"
        )
    return seeds


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _run_seeds(base: RunConfig, seeds: list[int], batched: bool = False) -> list[dict[str, Any]]:
    """Train ``base`` once per seed: each run's config is a copy of ``base`` with its seed."""
    from .train import train, train_seeds

    configs = [base.with_seed(seed) for seed in seeds]
    if batched:
        return train_seeds(configs, batched=True, progress=base.train.progress)
    return [train(config) for config in configs]


def cmd_train(args: argparse.Namespace) -> int:
    from .analysis import results_table
    from .train import load_config

    base = load_config(args.config, _common_overrides(args))  # validates everything once, before any training
    summaries = _run_seeds(base, args.seeds or [base.seed], batched=args.batched)
    for summary, seed in zip(summaries, args.seeds or [base.seed]):
        run_dir = base.with_seed(seed).run_dir()
        metric = summary.get("metric", "test_error")
        unit, name = ("%", "test error") if metric == "test_error" else ("", metric.replace("_", " "))
        print(
            f"{summary['method']} seed {seed}: selected {name} {summary[f'selected_{metric}']:.2f}{unit} "
            f"(final {summary[f'final_{metric}']:.2f}{unit}), "
            f"{summary['seconds_per_epoch']:.2f} s/epoch -> {run_dir}"
        )
    if len(summaries) > 1:
        print(results_table(summaries))
    return 0


def _common_overrides(args: argparse.Namespace) -> list[str]:
    """The key=value overrides plus what the shared options of train and compare ask for."""
    overrides = list(args.overrides)
    if getattr(args, "method", None):
        overrides.append(f"method.name={args.method}")
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.no_progress:
        overrides.append("train.progress=false")
    return overrides


def write_comparison(experiment_dir: Path) -> str:
    """Write comparison.md, comparison.csv and curves.png for the runs in ``experiment_dir``."""
    from .analysis import comparison_rows, format_csv, format_markdown, load_runs, plot_error_curves
    from .rundir import write_text

    runs = load_runs(experiment_dir)
    rows = comparison_rows(runs)
    table = format_markdown(rows)
    write_text(experiment_dir / "comparison.md", table + "\n")
    write_text(experiment_dir / "comparison.csv", format_csv(rows))
    plot_error_curves(runs, experiment_dir / "curves.png", title=experiment_dir.name)
    return table


def cmd_compare(args: argparse.Namespace) -> int:
    from .train import load_config
    from .train.grid import run_grid

    if args.summarize:
        table = write_comparison(Path(args.summarize))
        print(table)
        print(f"\nwrote comparison.md, comparison.csv and curves.png in {args.summarize}")
        return 0
    if not args.methods:
        raise ValueError("compare needs --methods (e.g. onehot,label_embedding) or --summarize DIR")
    base = load_config(args.config, _common_overrides(args))
    configs = [base.with_method(method).with_seed(seed) for method in args.methods for seed in args.seeds]
    for config in configs[:: len(args.seeds)]:  # one per method: fail on a bad name before training
        from .methods import options

        options(config.method.name)
    run_grid(configs, jobs=args.jobs, progress=not args.no_progress, batched=args.batched)
    experiment_dir = Path(base.output_dir) / base.experiment
    print(write_comparison(experiment_dir))
    print(f"\nwrote comparison.md, comparison.csv and curves.png in {experiment_dir}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .analysis import (
        label_similarity,
        load_run_representation,
        most_similar,
        plot_similarity_heatmap,
        results_table,
        similar_table,
    )
    from .train import build_config
    from .train.seed import describe_seeds

    seeds = list(range(args.seeds))
    overrides = [f"output_dir={args.output_dir}", f"train.progress={str(not args.no_progress).lower()}"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    demo = build_config(DEMO_CONFIG, overrides)
    summaries = []
    for method in ("onehot", "label_embedding"):
        print(f"training {method} on the bundled digits, {describe_seeds(seeds)} ...", flush=True)
        summaries += _run_seeds(demo.with_method(method), seeds)
    print()
    print("Test error (%) on scikit-learn's digits (300 test images), MLP 64-500-500, mean ± std over seeds:")
    print(results_table(summaries))

    run_dir = demo.with_method("label_embedding").with_seed(0).run_dir()
    representation, class_names = load_run_representation(run_dir)
    similarity = label_similarity(representation)
    figure = Path(args.output_dir) / DEMO_CONFIG["experiment"] / "label_similarity.png"
    plot_similarity_heatmap(
        similarity, class_names, figure, title="learned label embedding softmax(E), digits"
    )
    print()
    print("Most similar labels in the learned embedding (seed 0):")
    print(similar_table(most_similar(similarity, class_names, top=3)))
    print()
    print(f"heatmap: {figure}")
    print(f"runs:    {Path(args.output_dir) / DEMO_CONFIG['experiment']}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import os

    from .analysis.analyze import analyze

    output = args.output_dir
    if output is None:
        common = Path(os.path.commonpath([str(Path(d).resolve()) for d in args.run_dirs]))
        output = (common if len(args.run_dirs) > 1 else Path(args.run_dirs[0])) / "analysis"
    summary = analyze(
        args.run_dirs, output, classes=args.classes, top=args.top, fmt=args.format, data_dir=args.data_dir
    )
    for method, wn in summary["wordnet_by_method"].items():
        print(f"{method}: WordNet tau-b {wn['mean']:.3f} ± {wn['std']:.3f} over {wn['runs']} run(s)")
    print(f"wrote heatmaps, dendrograms, MDS maps, similar.md and analysis.json/.md in {output}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from .analysis import label_similarity, most_similar, similar_table
    from .analysis.representation import run_representation
    from .analysis.similarity import label_indices, nearest_labels

    rep = run_representation(args.run_dir, data_dir=args.data_dir)
    if rep.source != "learned":
        print(f"{rep.method} learns no label representation: using the {rep.source} of its model\n")
    if args.labels is None:
        print(similar_table(most_similar(label_similarity(rep.matrix), rep.class_names, top=args.top)))
        return 0
    try:
        labels = label_indices(
            [name.strip() for name in args.labels.split(",") if name.strip()], rep.class_names
        )
    except ValueError as error:
        raise ValueError(f"--labels: {error}") from None
    print(similar_table(nearest_labels(args.run_dir, rep, labels, top=args.top)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import build_report

    path = build_report(
        args.dir, args.output, top=args.top, data_dir=args.data_dir, analyze_runs=not args.no_analysis
    )
    print(path)
    return 0


class _TqdmHandler(logging.Handler):
    """Log records as lines above any progress bar (tqdm.write keeps the bar intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def show_library_notes() -> None:
    """The library's notes (reusing a finished run, waiting for another process, a fallback) on stderr."""
    logger = logging.getLogger("labelemb")
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a mistake reported in one line (and where to read the usage)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


OVERRIDES_HELP = (
    "config overrides: train.epochs=3, model.hidden=[100], train.device=cpu; a bare key is a method "
    "option (tau=4)"
)
NO_PROGRESS_HELP = "no progress bar (a bar is drawn only on a terminal; a log gets a line per evaluation)"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options train and compare share."""
    parser.add_argument(
        "--data-dir",
        help="folder searched first for the dataset files (default $LABELEMB_DATA, then the cache "
        "~/.cache/labelemb, downloading there)",
    )
    parser.add_argument("--output-dir", help="root of the run folders (default runs/)")
    parser.add_argument("--device", help="auto (CUDA if there is one, the default), cpu, cuda or cuda:N, mps")
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labelemb",
        description="Train networks with learned label representations (Label Embedding Network).",
    )
    parser.add_argument("--version", action="version", version=f"labelemb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train one method over one or more seeds from a config",
        description="Train from a YAML config; extra key=value arguments override it "
        "(train.epochs=3, model.hidden=[100], tau=4 for a method option).",
    )
    train.add_argument(
        "--config", help="YAML config, e.g. configs/mnist-mlp.yaml (default: the digits demo setting)"
    )
    train.add_argument("--method", help="method name, e.g. onehot, label_embedding, label_smoothing")
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, dest="single_seed", help="one seed (default: the config's, 0)")
    seeds.add_argument(
        "--seeds", type=parse_seeds, help="several seeds, trained in turn: 0-19, 0,2,5 or 0-4,9"
    )
    _add_run_options(train)
    train.add_argument(
        "--batched", action="store_true", help="train the seeds side by side in one process (stacked models)"
    )
    train.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    train.set_defaults(func=cmd_train)

    compare = commands.add_parser(
        "compare",
        help="train several methods over seeds and write a comparison table and error curves",
        description="Runs every (method, seed) without a finished run (so an interrupted comparison "
        "resumes), then writes comparison.md, comparison.csv and curves.png in OUTPUT_DIR/EXPERIMENT.",
    )
    compare.add_argument("--config", help="YAML config, e.g. configs/fashion-mnist-mlp.yaml")
    compare.add_argument(
        "--methods",
        type=lambda text: [m for m in text.split(",") if m],
        help="comma-separated method names, e.g. onehot,label_embedding,ols (onehot is the baseline)",
    )
    compare.add_argument(
        "--seeds", type=parse_seeds, default=[0], help="seeds of every method: 0-19, 0,2,5 (default 0)"
    )
    compare.add_argument(
        "--jobs", type=positive_int, default=1, help="runs at once, in parallel processes (default 1)"
    )
    compare.add_argument(
        "--summarize", metavar="DIR", help="train nothing: rebuild the table and figure from DIR's runs"
    )
    _add_run_options(compare)
    compare.add_argument(
        "--batched", action="store_true", help="train each method's seeds side by side in one process"
    )
    compare.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    compare.set_defaults(func=cmd_compare)

    demo = commands.add_parser(
        "demo",
        help="offline demo: onehot vs label_embedding on the bundled digits, with a heatmap",
        description="Trains onehot and label_embedding on scikit-learn's bundled 8x8 digits (no "
        "download), prints a comparison table and the most similar labels, and writes a heatmap.",
    )
    demo.add_argument("--output-dir", default="runs", help="root of the run folders (default runs/)")
    demo.add_argument("--seeds", type=positive_int, default=5, help="number of seeds per method (default 5)")
    demo.add_argument("--epochs", type=positive_int, default=None, help="epochs per run (default 30)")
    demo.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    demo.set_defaults(func=cmd_demo)

    analyze = commands.add_parser(
        "analyze",
        help="heatmaps, nearest labels, dendrograms, MDS maps and WordNet correlation of runs",
    )
    analyze.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="finished runs: <output_dir>/<exp>/<method>/seed<N>",
    )
    analyze.add_argument("--classes", type=lambda t: [c for c in t.split(",") if c], help="a subset: cat,dog")
    analyze.add_argument("--top", type=positive_int, default=5, help="nearest labels per class (default 5)")
    analyze.add_argument(
        "--format", choices=["png", "svg"], default="png", help="figure format (default png)"
    )
    analyze.add_argument(
        "--output-dir", type=Path, help="default: RUN_DIR/analysis (or the runs' common folder)"
    )
    analyze.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    analyze.set_defaults(func=cmd_analyze)

    similar = commands.add_parser(
        "similar", help="each class's most similar classes in a run's learned embedding"
    )
    similar.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    similar.add_argument(
        "--top", type=positive_int, default=5, help="most similar labels shown per label (default 5)"
    )
    similar.add_argument(
        "--labels",
        metavar="A,B,...",
        help="only these labels (comma-separated names); with a compressed embedding only their rows "
        "of softmax(e) are formed, so a 50,000-word vocabulary needs no 50,000 x 50,000 matrix",
    )
    similar.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    similar.set_defaults(func=cmd_similar)

    report = commands.add_parser(
        "report",
        help="one self-contained HTML page for a comparison directory (table, curves, heatmaps, WordNet)",
        description="Writes DIR/report.html (images embedded, opens offline) from the runs of a "
        "comparison directory; the analysis of each method's lowest seed goes to DIR/analysis/.",
    )
    report.add_argument("dir", type=Path, metavar="DIR", help="a comparison folder: <method>/seed<N>/ runs")
    report.add_argument("--output", type=Path, help="the HTML file (default DIR/report.html)")
    report.add_argument("--top", type=positive_int, default=5, help="nearest labels per class (default 5)")
    report.add_argument("--data-dir", help="dataset folder, for methods whose representation is computed")
    report.add_argument(
        "--no-analysis", action="store_true", help="reuse DIR/analysis/ from an earlier report"
    )
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after options (argparse alone takes them on one side only).
    args, extra = parser.parse_known_args(argv)
    if extra:
        misplaced = [item for item in extra if item.startswith("-") or "=" not in item]
        if args.command not in ("train", "compare") or misplaced:
            print(
                f"labelemb {args.command}: error: unrecognized arguments: {' '.join(misplaced or extra)} "
                f"(see labelemb {args.command} --help)",
                file=sys.stderr,
            )
            return 2
        args.overrides += extra
    if args.command == "train" and args.single_seed is not None:
        args.overrides.append(f"seed={args.single_seed}")
    from .data import DataError
    from .train import ConfigError, RunDirError
    from .train.distributed import init_from_environment, shutdown

    processes = init_from_environment()  # joins torchrun's process group when there is one
    show_library_notes()
    if args.command in ("train", "compare", "demo") and processes.world_size == 1:
        from .train.threads import use_free_cores

        use_free_cores()
    try:
        code = args.func(args)
    except (ConfigError, RunDirError, DataError, FileNotFoundError, ValueError) as error:
        print(f"labelemb {args.command}: error: {error}", file=sys.stderr)
        code = 2
    except OSError as error:  # a file or folder the command cannot read or write
        print(f"labelemb {args.command}: error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        code = 130
    finally:
        shutdown()
    if processes.world_size > 1:
        # gloo's threads can abort a process during interpreter teardown after the group is gone,
        # which torchrun would report as a failed run: everything is written, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
