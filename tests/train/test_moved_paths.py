"""The old paths of what moved from train/ to assembly/ (issue 71) still work for one release, each
with a DeprecationWarning, and hand on the very object at the new path."""

from __future__ import annotations

import importlib

import pytest

import labelemb.assembly.build
import labelemb.assembly.frozen
import labelemb.assembly.network
import labelemb.assembly.parts
import labelemb.assembly.plan
import labelemb.train
import labelemb.train.results

#: old module -> (a public name it held, where that name lives now)
MOVED = {
    "labelemb.train.plan": ("resolve", labelemb.assembly.plan),
    "labelemb.train.parts": ("DataSource", labelemb.assembly.parts),
    "labelemb.train.build": ("load_run_data", labelemb.assembly.build),
    "labelemb.train.network": ("Network", labelemb.assembly.network),
    "labelemb.train.frozen": ("freeze_features", labelemb.assembly.frozen),
    "labelemb.train.evaluation": ("selected_record", labelemb.train.results),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_and_gives_the_same_object(old):
    name, new = MOVED[old]
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new.__name__}"):
        thing = getattr(module, name)
    assert thing is getattr(new, name)


def test_build_run_moved_to_the_train_door():
    with pytest.warns(
        DeprecationWarning, match=r"labelemb\.train\.build\.build_run moved to labelemb\.train "
    ):
        from labelemb.train.build import build_run
    assert build_run is labelemb.train.build_run


def test_the_seed_helpers_went_where_they_are_used():
    module = importlib.import_module("labelemb.train.seed")
    with pytest.warns(DeprecationWarning, match=r"seed_everything moved to labelemb\.assembly\.parts"):
        assert module.seed_everything is labelemb.assembly.parts.seed_everything
    with pytest.warns(DeprecationWarning, match=r"describe_seeds moved to labelemb\.train\.display"):
        assert module.describe_seeds is labelemb.train.describe_seeds


def test_a_name_the_old_module_never_held_is_an_attribute_error():
    module = importlib.import_module("labelemb.train.plan")
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018
