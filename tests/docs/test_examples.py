"""The README's claim, by test: the drop-in head trains in a plain loop, Lightning and HF's Trainer.

Each script under examples/ runs for a few steps on scikit-learn's bundled digits. The loss must
fall, the label embedding E must move (and stay finite), the model must predict far above
chance, and nothing may be written to the working folder. Lightning and transformers come with
the ``examples`` extra; without them these tests FAIL (never skip) naming what to install.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from helpers.repo_paths import EXAMPLES

INSTALL = 'pip install -e ".[examples]"'

#: script name -> the packages beyond labelemb's own dependencies that it imports.
SCRIPTS = {
    "plain_pytorch": (),
    "lightning_module": ("lightning",),
    "hf_trainer": ("transformers", "accelerate"),
}
STEPS = 60


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py; fail, naming the extra to install, when a package is missing."""
    missing = [package for package in SCRIPTS[name] if importlib.util.find_spec(package) is None]
    if missing:
        pytest.fail(f"examples/{name}.py needs {', '.join(missing)}: run {INSTALL}", pytrace=False)
    module_name = f"labelemb_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"examples/{name}.py is missing"
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up here
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        pytest.fail(
            f"examples/{name}.py could not import {error.name or error}: run {INSTALL}", pytrace=False
        )
    finally:
        sys.modules.pop(module_name, None)
    return module


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_example_trains_the_head(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a script writes to its working folder shows up here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the hub
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # Lightning's seed_everything sets it
    example = load_example(name)

    result = example.main(steps=STEPS, seed=0, verbose=False)

    assert result["last_loss"] < result["first_loss"], result
    assert math.isfinite(result["embedding_change"]) and result["embedding_change"] > 0, result
    assert result["accuracy"] > 0.8, result  # ten classes: chance is 0.1; 60 steps reach about 0.95
    assert list(tmp_path.iterdir()) == [], f"examples/{name}.py wrote to its working folder"


def test_examples_are_deterministic() -> None:
    example = load_example("plain_pytorch")
    assert example.main(steps=10, seed=3, verbose=False) == example.main(steps=10, seed=3, verbose=False)


def test_plain_loop_calls_the_epoch_end_update() -> None:
    """docs/drop-in.md: ols and lwr make their soft labels in ``head.on_epoch_end()``, which a plain loop
    calls once an epoch, as examples/plain_pytorch.py does; for label_embedding and lwal it does nothing.
    ols's soft labels are zeros until the first epoch's end: the example's run (60 steps, 2 epochs and
    a part) ends with them learned."""
    example = load_example("plain_pytorch")
    result = example.main(steps=STEPS, seed=0, method="ols", verbose=False)
    assert result["embedding_change"] > 0.1, result
    assert result["accuracy"] > 0.8, result

    from labelemb.methods import Method, method_class

    has_update = {
        name: method_class(name).on_epoch_end is not Method.on_epoch_end
        for name in ("ols", "lwr", "label_embedding", "lwal", "lwal10", "lwal10_rpl")
    }
    assert has_update == {
        "ols": True,
        "lwr": True,
        "label_embedding": False,
        "lwal": False,
        "lwal10": False,
        "lwal10_rpl": False,
    }
