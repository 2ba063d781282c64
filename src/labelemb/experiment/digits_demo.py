"""``labelemb.demo``: the offline demo on scikit-learn's bundled digits, as ``labelemb demo`` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..analysis import (
    label_similarity,
    load_run_representation,
    mean_std,
    most_similar,
    plot_similarity_heatmap,
    results_table,
    similar_table,
)
from ..config import build_config
from ..metrics.figures import figure
from ..training import describe_seeds, train
from .judging import evaluate_finished
from .setting import DEMO_CONFIG, Seeds, seed_numbers

#: The two methods the demo compares.
DEMO_METHODS = ("onehot", "label_embedding")


@dataclass(repr=False)
class Demo:
    """What the demo shows: its three tables (error and ECE; AURC, OOD AUROC and set size; the
    labels most alike in the learned embedding), the heatmap's file and the runs' folder.
    ``print(demo)`` shows its report; a shell, one line."""

    error_table: str
    knowing_table: str
    similar_table: str
    heatmap: Path
    experiment_dir: Path
    first_seed: int

    def to_text(self) -> str:
        """The demo's report, as the command prints it after training."""
        return "\n".join(
            [
                "",
                "Test error (%) on scikit-learn's digits (300 test images), MLP 64-500-500, "
                "mean ± std over seeds:",
                self.error_table,
                "ECE % -> scaled: mean test ECE, raw and with the logits divided by a temperature "
                "fit on dev.",
                "",
                "Knowing when it is wrong (selected weights; OOD: 8x8 photo patches), mean ± std over seeds:",
                self.knowing_table,
                "",
                f"Most similar labels in the learned embedding (seed {self.first_seed}):",
                self.similar_table,
                "",
                f"heatmap: {self.heatmap}",
                f"runs:    {self.experiment_dir}",
            ]
        )

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        # Short: the dataclass's own repr printed the three tables on one line.
        return (
            f"Demo(methods={list(DEMO_METHODS)}, experiment_dir={str(self.experiment_dir)!r}, "
            f"heatmap={str(self.heatmap)!r})"
        )


def demo(
    seeds: Seeds = range(5),
    *,
    epochs: int | None = None,
    output_dir: str = "runs",
    progress: bool = True,
) -> Demo:
    """onehot against label_embedding on the bundled digits (:data:`DEMO_CONFIG`), each on
    ``seeds``, judged and compared; the learned label similarity drawn as a heatmap."""
    seeds = seed_numbers(seeds)
    overrides = [f"output_dir={output_dir}", f"train.progress={str(progress).lower()}"]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    setting = build_config(DEMO_CONFIG, overrides)
    summaries = []
    for method in DEMO_METHODS:
        print(f"training {method} on the bundled digits, {describe_seeds(seeds)} ...", flush=True)
        summaries += train([setting.with_method(method).with_seed(seed) for seed in seeds], batched=False)
    configs = [setting.with_method(m).with_seed(seed) for m in DEMO_METHODS for seed in seeds]
    records = evaluate_finished([config.run_dir() for config in configs], progress=progress)
    experiment_dir = Path(output_dir) / DEMO_CONFIG["experiment"]
    run_dir = setting.with_method("label_embedding").with_seed(seeds[0]).run_dir()
    representation, class_names = load_run_representation(run_dir)
    similarity = label_similarity(representation)
    heatmap = experiment_dir / "label_similarity.png"
    plot_similarity_heatmap(
        similarity, class_names, heatmap, title="learned label embedding softmax(E), digits"
    )
    return Demo(
        error_table=results_table(summaries, ece=True),
        knowing_table=knowing_table([config.method.name for config in configs], records),
        similar_table=similar_table(most_similar(similarity, class_names, top=3)),
        heatmap=heatmap,
        experiment_dir=experiment_dir,
        first_seed=seeds[0],
    )


def knowing_table(methods: list[str], records: list[dict[str, Any]]) -> str:
    """The demo's table of its runs' evaluations: AURC, the patches' MSP AUROC and the APS set size."""
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
