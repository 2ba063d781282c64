"""Search spaces for ``labelemb tune`` (issue 37): :mod:`labelemb.search_spaces` and each method's own space.

The command-line form (``--space train.lr=1e-4:1e-2:log``) and every way it can be wrong, one line
each; each method's declared ``search_space`` built at both of its bounds; the checker's
did-you-means and refusals; and :meth:`Space.suggest` with a real Optuna trial. Optuna comes with
the ``tune`` extra; without it the tests that need it FAIL (never skip) naming what to install.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys

import pytest
import torch
from helpers.repo_paths import SOURCE

from labelemb import methods
from labelemb.config import RUN_CONTEXT_OPTIONS, config_keys
from labelemb.methods.registry import method_builder, preset_options, search_space
from labelemb.search_spaces import Space, SpaceError, check_space, combine, import_optuna, parse_space

SEARCH_PY = SOURCE / "search_spaces.py"

#: What a method needs beyond the probe's context to be built at all (the user gives it).
NEEDS = {
    "label_embedding_fixed": {"embedding": torch.eye(3)},
    "static_label": {"vectors": torch.randn(3, 2)},
    "coteaching": {"forget_rate": 0.2},
}
#: The settings under which a method searches more (its ``search_space_when``).
SETTINGS = [(name, {}) for name in methods.available()] + [("label_embedding", {"variant": "nlp"})]


def optuna_or_fail():
    if importlib.util.find_spec("optuna") is None:
        pytest.fail('Optuna is not installed: these tests need the tune extra (pip install -e ".[tune]")')
    return import_optuna()


def check(name: str, spaces: dict[str, Space], **fixed: object) -> None:
    """``check_space`` as the tune command calls it, with a trial build of the method."""
    check_space(
        name,
        spaces,
        config_keys(),
        methods.options(name),
        fixed=preset_options(name),
        run_context=RUN_CONTEXT_OPTIONS,
        build=method_builder(name, **{**NEEDS.get(name, {}), **fixed}),
    )


def refusal(name: str, spaces: dict[str, Space], **fixed: object) -> str:
    with pytest.raises(SpaceError) as caught:
        check(name, spaces, **fixed)
    return str(caught.value)


# --- the command-line form -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "space"),
    [
        ("train.lr=1e-4:1e-2:log", "train.lr", Space.floats(1e-4, 1e-2, log=True)),
        ("tau=1.0:8", "tau", Space.floats(1.0, 8.0)),
        ("k=1:5", "k", Space.ints(1, 5)),
        ("update_every=1:16:LOG", "update_every", Space.ints(1, 16, log=True)),
        ("shift=-2:3", "shift", Space.ints(-2, 3)),
        ("x=-0.5:.5", "x", Space.floats(-0.5, 0.5)),
        (" train.batch_size = 32 : 256 ", "train.batch_size", Space.ints(32, 256)),
        ("train.adam=fused|classic", "train.adam", Space.categorical("fused", "classic")),
        ("v=1|2.5|true|none|word", "v", Space.categorical(1, 2.5, True, None, "word")),
    ],
)
def test_parse_space_reads_ranges_and_choices(text, key, space):
    parsed_key, parsed = parse_space(text)
    assert (parsed_key, parsed) == (key, space)
    assert parse_space(f"{key}={parsed}") == (key, space)  # str() is the command-line form


def test_int_bounds_make_an_int_range_and_any_float_a_float_range():
    assert parse_space("k=1:5")[1].kind == "int"
    assert parse_space("k=1:5.0")[1].kind == "float"
    assert parse_space("k=1e0:5")[1].kind == "float"
    assert isinstance(parse_space("k=1:5.0")[1].low, float)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("train.lr", "not of the form key=low:high"),
        ("train.lr=", "not of the form key=low:high"),
        ("=1:2", "not of the form key=low:high"),
        ("1lr=1:2", "not of the form key=low:high"),
        ("train.lr=0.1", "not of the form train.lr=low:high"),
        ("train.lr=1:2:3:4", "not of the form train.lr=low:high"),
        ("train.lr=1e-4:1e-2:lin", "can only be 'log'"),
        ("train.lr=fast:1e-2", "cannot read 'fast' as a number"),
        ("train.lr=1e-4:", "cannot read '' as a number"),
        ("train.lr=1e-4:inf", "not finite"),
        ("train.lr=nan:1", "not finite"),
        ("train.lr=1e-2:1e-4", "inverted"),
        ("k=5:1", "inverted"),
        ("train.lr=0.01:0.01", "is empty"),
        ("k=3:3", "is empty"),
        ("train.lr=0:1e-2:log", "log range needs low > 0"),
        ("k=0:5:log", "log range needs low > 0"),
        ("tau=-1.0:4:log", "log range needs low > 0"),
        ("train.adam=fused|", "an empty choice"),
        ("train.adam=fused|fused", "listed twice"),
    ],
)
def test_parse_space_refuses_in_one_line_naming_the_key(text, says):
    with pytest.raises(SpaceError) as caught:
        parse_space(text)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert says in message
    key = text.partition("=")[0].strip()
    assert key in message


def test_inverted_and_log_ranges_say_the_fix():
    with pytest.raises(SpaceError, match=r"write it as 0\.0001:0\.01"):
        parse_space("train.lr=1e-2:1e-4")
    with pytest.raises(SpaceError, match=r"start it above zero .* or drop :log"):
        parse_space("train.lr=0.0:1e-2:log")
    with pytest.raises(SpaceError, match=r"start it at 1 or drop :log"):
        parse_space("update_every=0:16:log")
    with pytest.raises(SpaceError, match=r"give the value as an override"):
        parse_space("train.lr=0.1:0.1")


def test_space_refuses_bad_ranges_when_built_directly():
    with pytest.raises(SpaceError, match="inverted"):
        Space.floats(1.0, 0.5)
    with pytest.raises(SpaceError, match="whole number"):
        Space.ints(1, 2.5)
    with pytest.raises(SpaceError, match="log range"):
        Space.ints(0, 4, log=True)
    with pytest.raises(SpaceError, match="two choices or more"):
        Space.categorical("only")
    with pytest.raises(SpaceError, match="unknown kind"):
        Space("normal", 0.0, 1.0)
    assert Space.floats(1, 2) == Space.floats(1.0, 2.0)  # whole bounds of a float range are floats
    assert hash(Space.floats(1, 2)) == hash(Space.floats(1.0, 2.0))  # frozen: a dict key


def test_contains():
    assert 0.5 in Space.floats(0.0, 1.0) and 1.5 not in Space.floats(0.0, 1.0)
    assert 3 in Space.ints(1, 5) and 3.0 not in Space.ints(1, 5) and True not in Space.ints(0, 5)
    assert "a" in Space.categorical("a", "b") and "c" not in Space.categorical("a", "b")


# --- each method's own space ------------------------------------------------------------------


def test_each_method_declares_its_space():
    spaces = {name: set(search_space(name)) for name in methods.available()}
    assert spaces["label_embedding"] == {"tau", "alpha"}
    assert set(search_space("label_embedding", {"variant": "nlp"})) == {"tau", "alpha", "soft_warmup"}
    assert spaces["label_smoothing"] == {"epsilon"}
    assert spaces["confidence_penalty"] == {"beta"}
    assert spaces["tfkd_reg"] == {"temperature", "alpha"}
    assert spaces["ols"] == {"alpha"}
    assert spaces["lwr"] == {"k", "tau"}
    assert spaces["lwal"] == spaces["lwal10"] == spaces["lwal10_rpl"] == {"update_every"}
    assert spaces["label_embedding_fixed"] == {"beta"}
    assert spaces["onehot"] == set() and spaces["static_label"] == set()
    assert spaces["elogitnorm"] == set()  # hyperparameter-free: only shared keys such as train.lr
    assert spaces["gce"] == {"q"} and spaces["nls"] == {"smooth_rate"}
    assert spaces["sce"] == spaces["nce_rce"] == {"alpha", "beta"}
    assert spaces["bootstrap_soft"] == spaces["bootstrap_hard"] == {"beta"}  # each its own default
    assert spaces["elr"] == {"beta", "lam"}
    assert methods.method_class("onehot").search_space == {}


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_soft_warmup_is_searched_for_the_nlp_variant_only(variant):
    assert "soft_warmup" not in search_space("label_embedding", {"variant": variant})


def test_a_preset_does_not_search_what_it_fixes():
    assert "repel" in methods.options("lwal10_rpl")
    assert "repel" not in search_space("lwal10_rpl")
    message = refusal("lwal10_rpl", {"repel": Space.floats(1.0, 10.0)})
    assert "fixes repel=10.0" in message


@pytest.mark.parametrize(("name", "settings"), SETTINGS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_declared_key_is_an_option_and_the_default_lies_inside(name, settings):
    options = methods.options(name)
    for key, space in search_space(name, settings).items():
        assert key in options, f"{name} searches {key}, which it does not take"
        default = options[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert default in space or float(default) in space, (
                f"{name}'s default {key}={default} is outside {space}"
            )


@pytest.mark.parametrize(("name", "settings"), SETTINGS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_method_builds_at_both_bounds_of_its_space(name, settings):
    build = method_builder(name, **{**NEEDS.get(name, {}), **settings})
    for key, space in search_space(name, settings).items():
        for bound in space.bounds():
            method = build({key: bound})
            assert getattr(method, key, bound) == bound or key == "soft_warmup"
    check(name, search_space(name, settings), **settings)  # the checker agrees


def test_soft_warmup_bounds_become_updates():
    build = method_builder("label_embedding", variant="nlp", total_updates=1000)
    assert build({"soft_warmup": 0.0}).soft_warmup == 0
    assert build({"soft_warmup": 0.6}).soft_warmup == 600


# --- the checker --------------------------------------------------------------------------------


def test_shared_keys_and_method_keys_pass_together():
    shared = dict([parse_space("train.lr=1e-4:1e-2:log"), parse_space("train.batch_size=32|128")])
    for name in ("onehot", "label_smoothing", "lwr", "lwal10_rpl"):
        spaces = combine(search_space(name), shared)
        assert set(shared) <= set(spaces)
        check(name, spaces)
    narrower = combine(search_space("label_smoothing"), dict([parse_space("epsilon=0.05:0.2")]))
    assert narrower["epsilon"] == Space.floats(0.05, 0.2)  # the command line's range wins


def test_a_misspelt_method_option_gets_a_did_you_mean():
    message = refusal("label_smoothing", {"epsilom": Space.floats(0.0, 0.2)})
    assert message == (
        "method 'label_smoothing': --space epsilom=0.0:0.2: method 'label_smoothing' has no option "
        "'epsilom'; did you mean 'epsilon'?"
    )


def test_an_option_of_another_method_lists_the_options():
    message = refusal("onehot", {"tau": Space.floats(1.0, 4.0)})
    assert "has no option 'tau'" in message and "its options are: init_std" in message


def test_a_misspelt_config_key_gets_a_did_you_mean():
    message = refusal("onehot", {"train.lrr": Space.floats(1e-4, 1e-2, log=True)})
    assert "config key 'train.lrr' does not exist; did you mean 'train.lr'?" in message
    assert "did you mean the config key 'train.lr'?" in refusal("onehot", {"lr": Space.floats(0.1, 1.0)})
    assert "write tau=... instead of method.tau" in refusal(
        "label_embedding", {"method.tau": Space.floats(1, 4)}
    )


def test_a_bound_the_method_refuses_is_refused():
    key, space = parse_space("epsilon=0.5:1.5")
    message = refusal("label_smoothing", {key: space})
    assert "\n" not in message
    assert "does not accept epsilon=1.5" in message and "epsilon must lie in [0, 1]" in message
    assert "does not accept tau=0.0" in refusal("lwr", dict([parse_space("tau=0.0:2.0")]))


def test_an_option_the_run_gives_is_refused():
    message = refusal("lwr", dict([parse_space("epochs=5:20")]))
    assert "epochs is what the trainer gives the method from the run; search train.epochs instead" in message


def test_a_range_of_the_wrong_kind_is_refused():
    assert "write tau=1.0:4.0" in refusal("label_embedding", dict([parse_space("tau=1:4")]))
    assert "takes whole numbers" in refusal("lwr", dict([parse_space("k=1.5:4")]))


def test_every_problem_is_a_line():
    spaces = dict(
        [parse_space("epsilom=0.1:0.2"), parse_space("train.lrr=1e-4:1e-2"), parse_space("epsilon=0.5:1.5")]
    )
    lines = refusal("label_smoothing", spaces).splitlines()
    assert len(lines) == 3
    assert all(line.startswith("method 'label_smoothing': --space ") for line in lines)


# --- Optuna -------------------------------------------------------------------------------------


SPACES = {
    "lr": Space.floats(1e-4, 1e-2, log=True),
    "alpha": Space.floats(0.0, 0.9),
    "k": Space.ints(1, 5),
    "period": Space.ints(1, 16, log=True),
    "adam": Space.categorical("fused", "classic"),
}


def draw(trials: int) -> list[dict[str, object]]:
    optuna = optuna_or_fail()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    drawn = []
    for _ in range(trials):
        trial = study.ask()
        values = {name: space.suggest(trial, name) for name, space in SPACES.items()}
        study.tell(trial, float(values["lr"]) * values["k"])  # past the random start-up: TPE proper
        drawn.append(values)
    return drawn


def test_suggest_draws_inside_each_space_the_same_for_the_same_seed():
    drawn = draw(14)
    for values in drawn:
        for name, value in values.items():
            assert value in SPACES[name], f"{name}={value!r} outside {SPACES[name]}"
        assert isinstance(values["k"], int) and isinstance(values["lr"], float)
    assert len({values["lr"] for values in drawn}) > 1
    assert draw(14) == drawn


def test_search_imports_no_labelemb_package_and_optuna_only_in_functions():
    tree = ast.parse(SEARCH_PY.read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("labelemb"), ast.unparse(node)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert "optuna" not in ast.unparse(node)
    assert "optuna" not in inspect.getsource(Space.suggest)


def test_import_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match=r'pip install "labelemb\[tune\]"'):
        import_optuna()
