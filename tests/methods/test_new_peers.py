"""What each peer of issue 59 owes the method contract (its loss against hand computations is in
its own test file, test_<name>.py): ignored rows change nothing and a batch of them is a zero loss;
the chunked head gives the step computed at once; micro-batches add up to the batch where the loss
is a mean of per-row terms; options, defaults, traits and search spaces; and in training on the
digits, a run killed mid-epoch resumes as if never stopped, seeds side by side give each seed's own
run and the command line trains each. The adapters' micro-batches are checked with the other
methods' in tests/integrations/, stacked seeds and non-finite rows with every method's in
tests/training/test_batched.py and tests/methods/test_degenerate.py."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.batched_checks import assert_same_batched_run, run_both
from helpers.run_checks import assert_same_resumed_run, interrupt_at_first_checkpoint, read_metrics

from labelemb import methods
from labelemb.cli import main
from labelemb.methods.registry import search_space
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

#: Each method in a setting where every term and branch is at work on the tests' rows.
ACTIVE = {
    "maxsup": {"epochs": 3, "alpha": 0.3, "alpha_end": 0.9},
    "acls": {"alpha": 0.5, "margin": 1.0},
    "dual_focal": {"gamma": 2.0},
    "mdca": {"beta": 2.0},
    # Inverse focal in every bin at first; the dev predictions of each epoch's end then move them.
    "adafocal": {"gamma_initial": -1.0, "lam": 3.0},
}
NAMES = list(ACTIVE)
#: Each method's defaults (the authors', see each class).
DEFAULTS = {
    "maxsup": {"alpha": 0.1, "alpha_end": 0.2},
    "acls": {"alpha": 0.1, "margin": 10.0, "pos_lambda": 1.0, "neg_lambda": 0.1},
    "dual_focal": {"gamma": 5.0},
    "mdca": {"beta": 1.0, "gamma": 0.0},
    "adafocal": {
        "lam": 1.0,
        "gamma_initial": 1.0,
        "gamma_max": 20.0,
        "gamma_min": -2.0,
        "switch_pt": 0.2,
        "num_bins": 15,
    },
}
#: The options each method's tuning searches.
SEARCHED = {
    "maxsup": {"alpha", "alpha_end"},
    "acls": {"alpha", "margin"},
    "dual_focal": {"gamma"},
    "mdca": {"beta"},
    "adafocal": {"lam"},
}
#: Whether each method's loss is a mean of per-row terms: then it has a chunked head and gradient
#: accumulation gives the step of the whole batch (a statistic of the batch is neither).
PER_ROW = {
    "maxsup": True,
    "acls": True,
    "dual_focal": True,
    "mdca": False,
    "adafocal": True,
}
#: Whether each method serves a sequence model's token rows (adafocal reads a classified dev split).
TOKENS = {name: name != "adafocal" for name in ACTIVE}
#: The terms each method logs beside its loss (a check record's ``train_<term>``).
TERMS = {
    "maxsup": {"ce", "max_suppression"},
    "acls": {"ce", "reg"},
    "dual_focal": {"dual_focal", "ce"},
    "mdca": {"ce", "mdca"},
    "adafocal": {"adafocal", "ce"},
}
PER_ROW_NAMES = [name for name in NAMES if PER_ROW[name]]


def build(name: str, d: int = 6, m: int = 5, **options) -> methods.Method:
    """Method ``name`` in its active setting, confident enough that every term is at work."""
    torch.manual_seed(0)
    method = methods.build(name, in_features=d, num_classes=m, **{**ACTIVE[name], **options})
    with torch.no_grad():
        method.output.weight.mul_(6.0)
    return method


def gradients(method: methods.Method, features: torch.Tensor, target: torch.Tensor):
    """The step and the gradients of its loss in the features and every parameter."""
    rows = features.clone().requires_grad_()
    out = method(rows, target)
    return out, torch.autograd.grad(out.loss, [rows, *method.parameters()])


# ---------------------------------------------------------------- ignored rows


@pytest.mark.parametrize("name", NAMES)
def test_ignored_rows_change_nothing(name):
    """Rows ignored at the end, in the middle, or by a custom ignore_index: the loss, terms and
    gradients of the rows that count alone (mdca's batch means included), and no gradient for them."""
    method = build(name).double()
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(12, 6, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 5, (12,), generator=generator)
    kept = torch.tensor([0, 1, 3, 4, 6, 7, 8, 9, 10, 11])
    alone, alone_grads = gradients(method, features[kept], target[kept])
    for ignore_index in (-100, 7):
        padded = target.clone()
        padded[[2, 5]] = ignore_index
        copy = build(name, ignore_index=ignore_index).double()
        out, grads = gradients(copy, features, padded)
        torch.testing.assert_close(out.loss, alone.loss, rtol=1e-12, atol=0)
        assert out.terms.keys() == alone.terms.keys() == TERMS[name]
        for key, value in alone.terms.items():
            torch.testing.assert_close(out.terms[key], value, rtol=1e-12, atol=1e-15, msg=key)
        assert not grads[0][[2, 5]].any()
        torch.testing.assert_close(grads[0][kept], alone_grads[0], rtol=1e-10, atol=1e-14)
        for got, want in zip(grads[1:], alone_grads[1:]):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_ignored_rows_is_a_zero_loss_with_zero_gradients(name):
    method = build(name, d=3)
    features = torch.randn(6, 3, requires_grad=True)
    out = method(features, torch.full((6,), -100))
    assert out.loss.item() == 0.0
    assert all(value.item() == 0.0 for value in out.terms.values())
    out.loss.backward()
    assert torch.all(features.grad == 0)
    assert all(not p.grad.any() for p in method.parameters())
    empty = method(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert empty.loss.item() == 0.0 and empty.logits.shape == (0, 5)


# ---------------------------------------------------------------- chunked head, micro-batches


@pytest.mark.parametrize("name", PER_ROW_NAMES)
def test_the_chunked_head_gives_the_step_computed_at_once(name):
    """Loss, every logged term and every gradient, with ignored rows, in chunks of 7 of 41 rows, after
    an epoch's end (maxsup's weight between the ends of its ramp)."""
    d, m, n = 8, 12, 41
    ignored = [3, 10, 11, 30]
    whole = build(name, d=d, m=m, chunk_size=10**6)
    whole.on_epoch_end()
    chunked = build(name, d=d, m=m, chunk_size=7)
    chunked.load_state_dict(whole.state_dict())
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(n, d, generator=generator)
    target = torch.randint(0, m, (n,), generator=generator)
    with torch.no_grad():  # a third of the rows labelled as predicted
        target[::3] = whole.logits(features[::3]).argmax(-1)
    target[ignored] = -100
    ours, our_grads = gradients(chunked, features, target)
    reference, reference_grads = gradients(whole, features, target)
    assert ours.logits is None and reference.logits.shape == (n, m)
    torch.testing.assert_close(ours.loss, reference.loss, rtol=1e-5, atol=1e-6)
    assert ours.terms.keys() == reference.terms.keys()
    for key in reference.terms:
        torch.testing.assert_close(ours.terms[key], reference.terms[key], rtol=1e-5, atol=1e-6, msg=key)
        assert reference.terms[key] > 0, key
    for got, want in zip(our_grads, reference_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert our_grads[0][ignored].abs().sum() == 0


@pytest.mark.parametrize("name", PER_ROW_NAMES)
def test_micro_batches_add_up_to_the_whole_batchs_gradients(name):
    """micro_batch_loss over 4 micro-batches (ignored rows unevenly spread) gives every gradient of
    the batch at once."""
    method = build(name).double()
    target = torch.randint(0, 5, (32,))
    target[:5] = -100  # the first micro-batch counts 3 rows, the others 8
    features = torch.randn(32, 6, dtype=torch.float64)
    items = (target != -100).sum()
    grads = []
    for parts in (1, 4):
        method.zero_grad(set_to_none=True)
        rows = features.clone().requires_grad_()
        for chunk, labels in zip(rows.chunk(parts), target.chunk(parts)):
            method.micro_batch_loss(chunk, labels, items).loss.backward()
        grads.append([rows.grad, *(p.grad.clone() for p in method.parameters())])
    for whole, micro in zip(*grads):
        assert whole.abs().max() > 0
        torch.testing.assert_close(micro, whole, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- registry and options


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_their_defaults_traits_and_spaces(name):
    cls = methods.method_class(name)
    assert cls.name == name and cls.stackable and not cls.needs_index and cls.batch_shape is None
    options = methods.options(name)
    assert {key: options[key] for key in DEFAULTS[name]} == DEFAULTS[name]
    assert set(search_space(name)) == SEARCHED[name]
    assert cls.chunkable == PER_ROW[name] == ("chunk_size" in options)
    assert bool(cls.accumulation_caveat) == (not PER_ROW[name])
    assert name in methods.serving("class") and (name in methods.serving("token")) == TOKENS[name]
    assert cls.reads_dev == (name == "adafocal")


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("maxsup", {}, "needs option"),  # epochs: the trainer passes the run's
        ("maxsup", {"epochs": 0}, "epochs .* must be >= 1"),
        ("maxsup", {"epochs": 2.5}, "epochs .* must be >= 1"),
        ("maxsup", {"epochs": 3, "alpha": -0.1}, "alpha must be"),
        ("maxsup", {"epochs": 3, "alpha_end": math.nan}, "alpha_end must be"),
        ("acls", {"alpha": -1.0}, "alpha must be"),
        ("acls", {"margin": math.inf}, "margin must be"),
        ("acls", {"pos_lambda": -0.5}, "pos_lambda must be"),
        ("acls", {"neg_lambda": math.nan}, "neg_lambda must be"),
        ("dual_focal", {"gamma": -1.0}, "gamma must be"),
        ("dual_focal", {"gamma": math.inf}, "gamma must be"),
        ("mdca", {"beta": -1.0}, "beta must be"),
        ("mdca", {"gamma": -0.5}, "gamma must be"),
        ("mdca", {"betta": 2.0}, r"no option\(s\) betta"),
        ("adafocal", {"lam": -1.0}, "lam must be"),
        ("adafocal", {"num_bins": 0}, "num_bins must be"),
        ("adafocal", {"switch_pt": math.nan}, "switch_pt must be"),
        ("adafocal", {"gamma_initial": 0.5, "gamma_min": 1.0}, "gamma_min <= gamma_initial <= gamma_max"),
        ("adafocal", {"gamma_max": math.inf}, "gamma_min <= gamma_initial <= gamma_max"),
    ],
)
def test_bad_options_are_refused_in_one_line(name, options, match):
    with pytest.raises(ValueError, match=match) as caught:
        methods.build(name, in_features=3, num_classes=4, **options)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- training runs on the digits


@pytest.mark.parametrize("name", NAMES)
def test_a_run_killed_mid_epoch_resumes_exactly(name, small_config, digits, tmp_path):
    overrides = (f"method.name={name}", "train.epochs=3", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    at_crash = interrupt_at_first_checkpoint(crashed, digits, epoch=1)
    assert at_crash["epoch"] == 1 and at_crash["batch"] > 0
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())
    assert {f"train_{term}" for term in TERMS[name]} <= set(read_metrics(clean.run_dir())[-1])


@pytest.mark.parametrize("name", NAMES)
def test_batched_seeds_train_as_sequential_runs(name, small_config, digits, tmp_path):
    batched, sequential = run_both(small_config, tmp_path, digits, f"method.name={name}")
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)


@pytest.mark.parametrize("name", NAMES)
def test_labelemb_train_runs_each_method_on_digits(name, tmp_path, capsys):
    argv = ["train", "--method", name, "--output-dir", str(tmp_path), "--no-progress", "train.epochs=2"]
    assert main(argv) == 0
    assert f"{name} seed 0: selected test error" in capsys.readouterr().out
    records = read_metrics(tmp_path / "demo-digits-mlp" / name / "seed0")
    assert [r["epoch"] for r in records] == [1.0, 2.0]
    assert records[-1]["test_error"] < 30.0
