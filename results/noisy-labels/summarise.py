"""The Fashion-MNIST and MNIST MLP noisy-label comparisons across their settings: the rank table,
each method's Welch's p against onehot per setting, the picture of clean-test error against the
share of wrong labels, the ranks picture (every criterion of the right labels' runs, then each
setting's error), the figures of the issue's claims (each with Welch's p) and, where the runs
ranked disputed test labels, each setting's table of them, from the experiment folders under
runs/ that exist.

    python results/noisy-labels/summarise.py [--runs runs] [--out docs] [--methods a,b,...]

``--methods`` keeps those methods only (the first pass's twelve, while the second pass trains into
the same folders); ``--docs`` prints the two tables as docs/noisy-labels.md holds them (the
settings named as there, the spreads left out: each setting's comparison.md has them).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from labelemb.analysis.compare import comparison_rows
from labelemb.analysis.noise_sweep import (
    plot_error_against_noise,
    rank_table,
    read_settings,
    welch_between,
    welch_table,
)
from labelemb.analysis.noise_table import disputed_block
from labelemb.analysis.ranks import experiments_rank_table, plot_ranks

#: The claims, each in the settings where it is asked: (setting, method, against, the question).
CLAIMS = [
    (
        "symmetric20",
        "label_smoothing",
        "onehot",
        "label smoothing helps under symmetric noise (Lukasik et al.)",
    ),
    (
        "symmetric50",
        "label_smoothing",
        "onehot",
        "label smoothing helps under symmetric noise (Lukasik et al.)",
    ),
    (
        "symmetric50",
        "nls",
        "label_smoothing",
        "negative smoothing beats smoothing at high noise (Wei et al.)",
    ),
    (
        "random-high",
        "nls",
        "label_smoothing",
        "negative smoothing beats smoothing at high noise (Wei et al.)",
    ),
    ("pairflip45", "coteaching", "onehot", "Co-teaching beats cross-entropy under pair-flip 45 %"),
    # Wei & Liu's sparse-high: 70 % of five classes flipped to their partner, so that the noisy
    # majority label of those classes is the wrong one; only the matrix can undo it.
    ("sparse-high", "forward_t", "onehot", "forward correction wins where the noisy majority is wrong"),
    ("sparse-high", "label_embedding", "onehot", "a learned label similarity helps where it is wrong"),
]


#: The settings the docs name otherwise than their folders.
DOCS_NAMES = {
    "pairflip45": "pair-flip 45 %",
    "symmetric20": "symmetric 20 %",
    "symmetric50": "symmetric 50 %",
}


def docs_form(table: str) -> str:
    """A rank or Welch table as the docs show it: settings named as there, Wei & Liu's with their
    share of wrong labels ("random-high (62.8 %)"), no spread."""

    def setting(match: re.Match) -> str:
        name, share = match.group(1), match.group(2)
        if name == "clean" or name in DOCS_NAMES:
            return DOCS_NAMES.get(name, name)
        return f"{name} ({share} %)"

    header, *rows = table.split("\n")
    header = re.sub(r"([a-z0-9-]+) \(([0-9.]+) % wrong\)", setting, header)
    header = " | ".join(DOCS_NAMES.get(cell, cell) for cell in header.split(" | "))
    return "\n".join([header, *(re.sub(r" ± [0-9.]+", "", row) for row in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--methods", type=lambda text: text.split(","), default=None)
    parser.add_argument("--docs", action="store_true", help="the tables as the docs hold them")
    args = parser.parse_args()
    form = docs_form if args.docs else str
    for data in ("fashion-mnist", "mnist"):
        prefix = f"{data}-mlp-noise-"
        folders = {
            folder.name.removeprefix(prefix): folder
            for folder in sorted(Path(args.runs).glob(f"{prefix}*"))
            if any(folder.glob("*/seed*/summary.json"))
        }
        if not folders:
            continue
        settings = read_settings(folders)
        if args.methods is not None:
            for setting in settings:
                setting.runs = {m: runs for m, runs in setting.runs.items() if m in args.methods}
        print(f"## {data} MLP\n\n{form(rank_table(settings))}\n")
        print(f"Welch's p against onehot (↓ lower error, ↑ higher):\n\n{form(welch_table(settings))}\n")
        picture = plot_error_against_noise(
            settings,
            Path(args.out) / f"{data}-mlp-noise.png",
            title=f"{data} MLP: clean-test error against noise",
        )
        print(f"(picture: {picture})\n")
        if "clean" in folders:  # every criterion of the right labels, then each noisy setting's error
            noisy = sorted((s for s in settings if s.name != "clean"), key=lambda s: s.rate)
            kept = sorted(next(s for s in settings if s.name == "clean").runs) if args.methods else None
            ranks = experiments_rank_table([folders["clean"], *(folders[s.name] for s in noisy)], kept)
            title = f"{data} MLP, 5 seeds: right labels, then each noisy setting's clean-test error"
            drawn = plot_ranks(ranks, Path(args.out) / f"ranks-{data}-mlp.png", title)
            print(f"{ranks.markdown()}\n(picture: {drawn})\n")
        named = {s.name: s for s in settings}
        for setting, method, other, question in CLAIMS:
            if setting in named and named[setting].errors(method) and named[setting].errors(other):
                mine, theirs, p = welch_between(named[setting], method, other)
                shown = "-" if p is None else f"{p:.2g}"
                against = f"{other} {theirs:.2f} %"
                print(f"- {question}: {setting}, {method} {mine:.2f} % against {against}, p = {shown}")
        print()
        for setting in sorted(settings, key=lambda s: s.rate):  # where the runs ranked disputed test labels
            block = disputed_block(comparison_rows(setting.runs), "onehot")
            if block is not None:
                print(f"### {data} MLP, {setting.name}: {block.text()}\n")


if __name__ == "__main__":
    main()
