"""`labelemb demo`: the offline demo on scikit-learn's bundled digits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .evaluate import evaluate_finished
from .run import DEMO_CONFIG, run_seeds

__all__ = ["DEMO_CONFIG", "cmd_demo", "knowing_table"]


def cmd_demo(args: argparse.Namespace) -> int:
    from ..analysis import (  # lazy: loaded when this command runs
        label_similarity,
        load_run_representation,
        most_similar,
        plot_similarity_heatmap,
        results_table,
        similar_table,
    )
    from ..training import build_config, describe_seeds  # lazy: loaded when this command runs

    seeds = list(args.seeds)
    overrides = [f"output_dir={args.output_dir}", f"train.progress={str(not args.no_progress).lower()}"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    demo = build_config(DEMO_CONFIG, overrides)
    summaries = []
    for method in ("onehot", "label_embedding"):
        print(f"training {method} on the bundled digits, {describe_seeds(seeds)} ...", flush=True)
        summaries += run_seeds(demo.with_method(method), seeds)
    print()
    print("Test error (%) on scikit-learn's digits (300 test images), MLP 64-500-500, mean ± std over seeds:")
    print(results_table(summaries, ece=True))
    print("ECE % -> scaled: mean test ECE, raw and with the logits divided by a temperature fit on dev.")
    configs = [demo.with_method(m).with_seed(seed) for m in ("onehot", "label_embedding") for seed in seeds]
    records = evaluate_finished([config.run_dir() for config in configs], progress=not args.no_progress)
    print()
    print("Knowing when it is wrong (selected weights; OOD: 8x8 photo patches), mean ± std over seeds:")
    print(knowing_table([config.method.name for config in configs], records))

    run_dir = demo.with_method("label_embedding").with_seed(seeds[0]).run_dir()
    representation, class_names = load_run_representation(run_dir)
    similarity = label_similarity(representation)
    figure = Path(args.output_dir) / DEMO_CONFIG["experiment"] / "label_similarity.png"
    plot_similarity_heatmap(
        similarity, class_names, figure, title="learned label embedding softmax(E), digits"
    )
    print()
    print(f"Most similar labels in the learned embedding (seed {seeds[0]}):")
    print(similar_table(most_similar(similarity, class_names, top=3)))
    print()
    print(f"heatmap: {figure}")
    print(f"runs:    {Path(args.output_dir) / DEMO_CONFIG['experiment']}")
    return 0


def knowing_table(methods: list[str], records: list[dict[str, Any]]) -> str:
    """The demo's table of its runs' evaluations: AURC, the patches' MSP AUROC and the APS set size."""
    from ..analysis.tables import mean_std  # lazy: loaded when this command runs
    from ..metrics.figures import figure  # lazy: loaded when this command runs

    # Each figure in its declared unit, in the record as in the table (labelemb.metrics.figures).
    aurc, auroc, size = (figure(k) for k in ("selective_msp_aurc", "ood_msp_auroc", "conformal_aps_set_size"))
    columns = (
        (aurc.label, lambda r: r["test"][aurc.name]),
        ("patches AUROC % (MSP)", lambda r: r["ood"]["patches"]["figures"][auroc.name]),
        ("APS set size (90 %)", lambda r: r["test"][size.name]),
    )
    lines = [
        "| method | " + " | ".join(head for head, _ in columns) + " |",
        "| --- |" + " --- |" * len(columns),
    ]
    for method in dict.fromkeys(methods):
        held = [r for m, r in zip(methods, records) if m == method]
        cells = []
        for _, read in columns:
            try:
                mean, std = mean_std([read(r) for r in held])
                cells.append(f"{mean:.2f} ± {std:.2f}")
            except KeyError:  # a diverged run records no figures
                cells.append("-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
