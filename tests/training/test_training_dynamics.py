"""Training dynamics (issue 101, part 2): each step adds its rows' margins and losses to tables on the
device, by hand for one run and for seeds side by side, with no host read (in a layout's step
too); the tables survive a checkpoint; a run records them only where asked, on clean labels as on
noisy ones, and its memorisation figures stay as they were."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from helpers.host_reads import HostReads

from labelemb.training import Classification, build_run, dynamics_of, recording_dynamics
from labelemb.training.dynamics import TABLES, TrainingDynamics
from labelemb.training.memorisation import TrainingPredictions, training_predictions
from labelemb.training.single import Single
from labelemb.training.stacked import Stacked

LABELS = torch.tensor([0, 1, 2, 1])


def by_hand(passes: list[tuple[list[int], torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tables of one run computed row by row from its passes (positions, logits)."""
    margins: dict[int, list[float]] = {i: [] for i in range(len(LABELS))}
    losses: dict[int, float] = {}
    for rows, logits in passes:
        for row, values in zip(rows, logits):
            own = float(values[LABELS[row]])
            others = [float(v) for j, v in enumerate(values) if j != LABELS[row]]
            margins[row].append(own - max(others))
            losses[row] = float(torch.nn.functional.cross_entropy(values[None], LABELS[row][None]))
    tables = {name: [] for name in TABLES}
    for row, seen in margins.items():
        tables["margin_sum"].append(sum(seen))
        tables["passes"].append(len(seen))
        tables["last_margin"].append(seen[-1])
        tables["last_loss"].append(losses[row])
        # The pass (from 1) at which the row was last not learned (margin not above 0); 0: never.
        tables["last_unlearned"].append(max([k + 1 for k, m in enumerate(seen) if m <= 0], default=0))
    return {name: torch.tensor(values) for name, values in tables.items()}


def test_one_runs_tables_by_hand():
    generator = torch.Generator().manual_seed(0)
    passes = [([0, 1, 2, 3], torch.randn(4, 3, generator=generator)) for _ in range(3)]
    passes[1][1][2] = torch.tensor([0.0, 0.0, 5.0])  # row 2 learned at the second pass
    passes[2][1][2] = torch.tensor([0.0, 0.0, 5.0])
    passes[0][1][2] = torch.tensor([5.0, 0.0, 0.0])
    table = TrainingDynamics(1, LABELS, torch.device("cpu"))
    for rows, logits in passes:
        for half in (slice(0, 2), slice(2, 4)):  # two steps a pass
            table.record(torch.tensor(rows[half]), logits[half])
    expected = by_hand(passes)
    for name in TABLES:
        torch.testing.assert_close(getattr(table, name)[0].to(expected[name].dtype), expected[name])
    assert int(table.last_unlearned[0, 2]) == 1


def test_seeds_side_by_side_keep_their_own_tables():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 3, generator=generator)  # (runs, passes, rows, classes)
    orders = [torch.randperm(4, generator=generator) for _ in range(6)]
    table = TrainingDynamics(2, LABELS, torch.device("cpu"))
    for k in range(3):
        index = torch.stack([orders[2 * k], orders[2 * k + 1]])  # each seed its own order
        table.record(index, torch.stack([logits[s, k][index[s]] for s in range(2)]))
    for s in range(2):
        expected = by_hand([(list(range(4)), logits[s, k]) for k in range(3)])
        for name in TABLES:
            torch.testing.assert_close(getattr(table, name)[s].to(expected[name].dtype), expected[name])


def test_recording_reads_nothing_on_the_host():
    table = TrainingPredictions(
        2, LABELS, None, torch.device("cpu"), TrainingDynamics(2, LABELS, torch.device("cpu"))
    )
    index, logits = torch.tensor([[0, 2], [3, 1]]), torch.randn(2, 2, 3)
    with HostReads() as reads:
        table.record(index, logits)
    assert reads == [] and int(table.dynamics.passes.sum()) == 4


def test_the_tables_survive_a_checkpoint():
    table = TrainingDynamics(2, LABELS, torch.device("cpu"))
    table.record(torch.tensor([[0, 1], [2, 3]]), torch.randn(2, 2, 3))
    checkpoint = TrainingPredictions(2, LABELS, None, torch.device("cpu"), table).state(1)
    again = TrainingDynamics(2, LABELS, torch.device("cpu"))
    again.restore(1, checkpoint)
    saved = dynamics_of(checkpoint)
    for name in TABLES:
        torch.testing.assert_close(getattr(again, name)[1], getattr(table, name)[1], equal_nan=True)
        torch.testing.assert_close(saved[name], getattr(table, name)[1], equal_nan=True)
    assert dynamics_of({"training_predictions": torch.zeros(4)}) is None and dynamics_of(None) is None


@pytest.mark.parametrize("noisy", [False, True], ids=["clean-labels", "noisy-labels"])
def test_a_run_records_dynamics_only_where_asked(noisy):
    clean = torch.tensor([0, 1, 2, 2])
    noise = SimpleNamespace(clean={"train": clean}) if noisy else None
    dataset = SimpleNamespace(noise=noise, train=SimpleNamespace(labels=LABELS))
    runs = [SimpleNamespace(checkpoint=None)]
    plain = training_predictions(runs, dataset, torch.device("cpu"))
    assert (plain is not None) == noisy and (plain is None or plain.dynamics is None)
    with recording_dynamics():
        table = training_predictions(runs, dataset, torch.device("cpu"))
    assert table is not None and table.dynamics is not None
    table.record(torch.tensor([0, 1, 2, 3]), torch.eye(3)[[0, 1, 2, 2]])
    # Memorisation is measured where the truth is known, as before; nothing is made up where it is not.
    figures = table.figures()[0]
    assert figures == ({"train_memorised": 0.0, "train_flipped_correct": 100.0} if noisy else {})


@pytest.mark.parametrize("side_by_side", [False, True], ids=["one-run", "seeds-side-by-side"])
def test_a_training_step_records_its_rows_reading_nothing_on_the_host(small_config, digits, side_by_side):
    device = torch.device("cpu")
    seeds = [0, 1] if side_by_side else [0]
    runs = [build_run(small_config(seed=seed), digits, device, Classification()) for seed in seeds]
    task = Classification()
    layout = Stacked(runs, task, device) if side_by_side else Single(runs[0], task, device)
    labels = digits.train.labels
    layout.predictions = TrainingPredictions(
        len(seeds), labels, None, device, TrainingDynamics(len(seeds), labels, device)
    )
    layout.optimise()
    split = digits.train.to(device)
    orders = layout.epoch_orders(0, split, 100).to(device)
    found = []
    for batch in range(3):
        with HostReads() as reads:
            layout.step(split, orders[:, batch * 100 : (batch + 1) * 100])
        found += reads if batch else []  # the first step may read once what it keeps after
    assert found == []
    seen = layout.predictions.dynamics.passes
    for s in range(len(seeds)):
        # Each run's own rows, once each: the 300 its order put in the three steps.
        assert seen[s][orders[s, :300]].tolist() == [1] * 300 and int(seen[s].sum()) == 300
