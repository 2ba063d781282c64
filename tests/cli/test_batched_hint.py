"""``compare --device cuda`` without ``--batched`` on seeds that could train side by side: one line
says ``--batched`` is faster there, with the factor docs/running-many.md measured."""

from __future__ import annotations

from helpers.repo_paths import DOCS

from labelemb.experiment.running import BATCHED_ON_GPU, batched_hint
from labelemb.training import build_config


def grid(method, device="cuda", seeds=(0, 1, 2), **train):
    base = build_config(
        {"data": {"name": "digits"}, "model": {"name": "mlp"}, "method": {"name": method}, "train": train}, []
    )
    base = base.model_copy(update={"train": base.train.model_copy(update={"device": device})})
    return [base.with_seed(seed) for seed in seeds]


def hint(configs, batched=False):
    return batched_hint(configs, batched)


def test_stackable_seeds_on_a_gpu_get_the_line():
    line = hint(grid("label_embedding") + grid("onehot"))
    assert line is not None and "\n" not in line
    assert "label_embedding, onehot" in line and "--batched" in line and BATCHED_ON_GPU in line


def test_no_line_where_batched_would_not_help_or_is_asked():
    assert hint(grid("label_embedding"), batched=True) is None
    assert hint(grid("label_embedding", device="cpu")) is None
    assert hint(grid("label_embedding", seeds=(0,))) is None  # one seed: nothing to stack
    assert hint(grid("label_embedding", clip_grad_norm=1.0)) is None  # runs in the sequential trainer only
    unequal = grid("label_embedding", epochs=2)[:2] + grid("label_embedding", epochs=3)[2:]
    assert hint(unequal) is None  # settings that differ train apart


def test_the_factor_is_the_one_the_docs_measured():
    page = (DOCS / "running-many.md").read_text()
    assert "16x" in BATCHED_ON_GPU and "1.65x" in BATCHED_ON_GPU
    rows = ["| `--runs-per-device 1` | 71.6 | 1x |", "| `--runs-per-device 8` | 43.3 | 1.65x |"]
    rows.append("| `--batched` (the 8 seeds side by side) | - | 16x |")
    assert all(row in page for row in rows) and "main at bab8be2" in page
