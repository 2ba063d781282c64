"""The recipe is the whole run: its named steps build and restore a run, lay it out with its
optimiser, loop and finish, in that order, and a layout has no optimiser until the recipe's step
gives it one."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch

from labelemb.assembly.plan import plan_run
from labelemb.tasks import Classification
from labelemb.training import recipe, train
from labelemb.training.single import Single

pytestmark = pytest.mark.usefixtures("one_thread")

#: The recipe's steps, in the order train_owned (and its _train_group, each group's) takes them.
STEPS = [
    "_process_device",
    "load",
    "continue_runs",
    "build_task",
    "schedule",
    "Saver",
    "_groups",
    "lay_out",
    "_count_flops",
    "run_loop",
]


def test_the_recipe_takes_its_steps_top_to_bottom():
    first_call = {}
    # Each group's steps in a call of their own, read on from where train_owned hands them over.
    assert "_train_group," in inspect.getsource(recipe.train_owned)
    source = inspect.getsource(recipe.train_owned) + inspect.getsource(recipe._train_group)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first_call[name] = min(node.lineno, first_call.get(name, node.lineno))
    assert set(STEPS) <= set(first_call)
    assert sorted(STEPS, key=first_call.get) == STEPS
    assert "build_seed_run(" in inspect.getsource(recipe._groups)  # each run built and restored here


def test_the_recipe_builds_restores_and_optimises_a_run_from_its_checkpoint(small_config, digits):
    config = small_config("train.epochs=1")
    train(config, dataset=digits)
    plan = plan_run(config, torch.device("cpu"), Classification())
    run = recipe.build_seed_run(plan, digits)
    assert run.checkpoint is not None and run.progress.step == run.checkpoint["progress"]["step"] > 0
    for name, value in run.network.state_dict().items():
        torch.testing.assert_close(value, run.checkpoint["network"][name])
    assert not hasattr(Single(run, Classification(), torch.device("cpu")), "optimizer")
    layout = recipe.lay_out([run], Classification(), torch.device("cpu"))
    saved = run.checkpoint["optimizer"]["state"]
    resumed = layout.optimizer.state_dict()["state"]
    assert saved.keys() == resumed.keys() and len(saved) > 0
    for key, state in saved.items():
        torch.testing.assert_close(resumed[key]["exp_avg"], state["exp_avg"])
    assert layout.scheduler.state_dict() == run.checkpoint["scheduler"]
