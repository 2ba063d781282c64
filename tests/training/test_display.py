"""The progress display of the runs trained together is made from them: named by their method and
seeds, counting the timetable's steps from where they stand."""

from __future__ import annotations

from types import SimpleNamespace

from labelemb.training.display import ProgressDisplay


def _run(seed: int, step: int) -> SimpleNamespace:
    return SimpleNamespace(
        plan=SimpleNamespace(seed=seed, method=SimpleNamespace(name="onehot")),
        progress=SimpleNamespace(step=step, examples=step * 10, records=[{"test_error": 20.0 + seed}]),
    )


def test_the_display_of_a_group_names_its_method_and_seeds_and_counts_on_from_their_step(capsys):
    timetable = SimpleNamespace(total_steps=12, num_train=40, epochs=3)
    task = SimpleNamespace(metrics=["test_error"])
    display = ProgressDisplay([_run(s, 4) for s in range(3)], task, timetable, enabled=True)
    assert display.bar.n == 4 and display.bar.total == 12
    display.on_check([_run(s, 4) for s in range(3)])
    display.on_close([], failed=False)
    assert "onehot seeds 0-2 (batched): step 4/12, epoch 1.00/3: test_error 21.00" in capsys.readouterr().err
    alone = ProgressDisplay([_run(5, 0)], task, timetable, enabled=False)
    assert alone.description == "onehot seed 5"
