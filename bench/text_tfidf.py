"""One epoch of the strong text model, onehot and label_embedding, seeds side by side.

    LABELEMB_DATA=DATA_DIR python bench/text_tfidf.py --device cuda --json OUT.json
    python bench/text_tfidf.py --device cpu --max-steps 3 --json OUT.json    # a quick look

The model is ``configs/debian-sections-tfidf.yaml``'s (``--config``): ``model.name: tfidf`` with
``projection: learned``, a learned projection of each text's TF-IDF entries whose term table is
stepped lazily (RowSparseAdam), on debian-sections (``debian-sections/`` under ``LABELEMB_DATA``
or ``--data-dir``). For each method (``--methods``) its ``--seeds`` seeds train together in this
process (``labelemb.training.train(..., batched=True)``) for ``--epochs`` epochs (or
``--max-steps`` updates); the runs are trained only, not judged afterwards (no ``labelemb
evaluate``), and their folders are deleted unless ``--output-dir`` is given.

Per method the JSON holds: ``seconds_per_epoch`` (the summary's: training time only, checks and
checkpoints left out, the shared time of the seeds trained together divided among them, so the cost
of one model), ``train_seconds`` (the same time for all the seeds together), ``wall_seconds``
(the whole call: reading the data, the TF-IDF and its entries, the checks, the checkpoints),
``peak_memory_mb`` (``torch.cuda.max_memory_allocated`` during the call; null off CUDA), each
seed's test error at the selected and at the last check, their mean, and the steps trained. The
JSON is written again after each method, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from cuda_clock import machine, megabytes, timed

from labelemb.training import load_config, train, unsupported_reason

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "debian-sections-tfidf.yaml"


def run_configs(args: argparse.Namespace, method: str, output_dir: str) -> list[Any]:
    """The method's runs, one per seed, as the config and the command line make them."""
    overrides = [
        f"method.name={method}",
        f"train.epochs={args.epochs}",
        f"train.device={args.device}",
        "train.progress=false",
        f"output_dir={output_dir}",
        *([f"train.max_steps={args.max_steps}"] if args.max_steps else []),
        *([f"data.dir={args.data_dir}"] if args.data_dir else []),
        *args.overrides,
    ]
    base = load_config(args.config, overrides)
    return [base.with_seed(seed) for seed in range(args.seeds)]


def measure(args: argparse.Namespace, method: str, output_dir: str) -> dict[str, Any]:
    """Train the method's seeds together once and read the figures off their summaries."""
    configs = run_configs(args, method, output_dir)
    summaries, wall, peak = timed(args.device, lambda: train(configs, batched=True, progress=False))
    selected = [summary["selected_test_error"] for summary in summaries]
    frozen = summaries[0].get("data", {}).get("frozen", {})
    return {
        "seeds": [summary["seed"] for summary in summaries],
        "side_by_side": unsupported_reason(configs[0]) is None,
        "seconds_per_epoch": statistics.fmean(summary["seconds_per_epoch"] for summary in summaries),
        # Each seed's summary holds its share of the time the seeds trained together.
        "train_seconds": sum(
            summary["seconds_per_epoch"] * summary["epochs_trained"] for summary in summaries
        ),
        "wall_seconds": wall,
        "peak_memory_mb": peak,
        "test_error": selected,
        "test_error_mean": statistics.fmean(selected),
        "final_test_error": [summary["final_test_error"] for summary in summaries],
        "steps": summaries[0]["steps"],
        "epochs_trained": summaries[0]["epochs_trained"],
        "tfidf_seconds": frozen.get("tfidf", {}).get("seconds"),
        "entries_seconds": frozen.get("entries", {}).get("seconds"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default=str(CONFIG), help="the run's YAML (default: debian-sections-tfidf)"
    )
    parser.add_argument("--methods", nargs="+", default=["onehot", "label_embedding"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1, trained side by side")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, help="stop after this many updates (a quick run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", help="the folder holding debian-sections/ (default: $LABELEMB_DATA)")
    parser.add_argument(
        "--output-dir", help="keep the run folders here (default: a temporary folder, deleted)"
    )
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="more config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    record: dict[str, Any] = {
        "command": " ".join(["python", "bench/text_tfidf.py", *(sys.argv[1:] if argv is None else argv)]),
        "config": args.config,
        **machine(args.device),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "methods": {},
    }
    for method in args.methods:
        output_dir = args.output_dir or tempfile.mkdtemp(prefix="labelemb-bench-tfidf-")
        try:
            figures = measure(args, method, output_dir)
        finally:
            if not args.output_dir:  # each seed's checkpoint holds its whole term table and Adam's
                shutil.rmtree(output_dir, ignore_errors=True)
        record["methods"][method] = figures
        print(
            f"{method}: {figures['seconds_per_epoch']:.2f} s/epoch per model "
            f"({figures['train_seconds']:.1f} s for {len(figures['seeds'])} seeds together, "
            f"{figures['wall_seconds']:.1f} s wall), peak {megabytes(figures['peak_memory_mb'])}, "
            f"test error {figures['test_error_mean']:.2f} %",
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
