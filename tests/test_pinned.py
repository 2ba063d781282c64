"""Pinned numbers: any silent change to the numerics of training fails here.

onehot and label_embedding train for two epochs on the bundled digits (MLP 64-32, lr 0.01, one
thread), sequentially and batched; the per-epoch training loss and test error must stay what
they were when this file was written (1e-4 relative). A deliberate change of the numerics
(a new default, a different kernel) updates these numbers in the same commit, and says why.
Recorded with torch 2.13.0 on the development CPU (x86-64, AVX-512) with the fused Adam default.
"""

from __future__ import annotations

import json
import math

import pytest

from labelemb.train import train, train_batched

pytestmark = pytest.mark.usefixtures("one_thread")

#: method -> seed -> [(train_loss, test_error %) after epoch 1, after epoch 2]
PINNED = {
    "onehot": {
        0: [(2.108089288075765, 32.0), (1.248120864232381, 19.333333333333332)],
        1: [(2.118695100148519, 20.666666666666668), (1.2689706484476726, 24.0)],
    },
    "label_embedding": {
        0: [(6.62713623046875, 26.0), (5.365152359008789, 10.666666666666666)],
        1: [(6.64442507425944, 19.333333333333332), (5.347789764404297, 11.333333333333334)],
    },
}


def per_epoch(run_dir) -> list[tuple[float, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["train_loss"], r["test_error"]) for r in map(json.loads, lines)]


def assert_pinned(got: list[tuple[float, float]], want: list[tuple[float, float]], what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} checks, pinned {len(want)}"
    for epoch, ((loss, error), (want_loss, want_error)) in enumerate(zip(got, want), 1):
        assert math.isclose(loss, want_loss, rel_tol=1e-4), (
            f"{what} epoch {epoch}: loss {loss} != {want_loss}"
        )
        assert math.isclose(error, want_error, rel_tol=1e-4), (
            f"{what} epoch {epoch}: error {error} != {want_error}"
        )


@pytest.mark.parametrize("method", sorted(PINNED))
def test_sequential_and_batched_runs_give_the_pinned_numbers(small_config, digits, tmp_path, method):
    def config(kind: str, seed: int):
        return small_config(f"method.name={method}", "train.lr=0.01", output_dir=tmp_path / kind, seed=seed)

    batched = [config("batched", seed) for seed in PINNED[method]]
    train_batched(batched, dataset=digits, progress=False)
    for run in batched:
        assert_pinned(per_epoch(run.run_dir()), PINNED[method][run.seed], f"{method} batched seed {run.seed}")
    for seed, want in PINNED[method].items():
        sequential = config("sequential", seed)
        train(sequential, dataset=digits)
        assert_pinned(per_epoch(sequential.run_dir()), want, f"{method} sequential seed {seed}")
