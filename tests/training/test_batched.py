"""Tests of batched training: S seeds side by side give the numbers of S sequential runs.

Every run is the embedded digits with a 64-32 MLP (or a 4-8-16 CNN) for two epochs, so a run
takes a fraction of a second. What "the same numbers" allows is tests/helpers/batched_checks.py's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.batched_checks import (
    SEEDS,
    assert_same_batched_run,
    assert_same_metrics,
    assert_same_summary,
    assert_settings_side_by_side_match_their_own_runs,
    assert_stacked_method_matches_each_seed,
    run_both,
)
from helpers.run_checks import TIMING, Interrupted, read_metrics, read_summary, untimed
from safetensors.torch import save_file

from labelemb import methods
from labelemb.stacking import _GroupedLinear
from labelemb.training import (
    BatchedConfigError,
    Classification,
    build_network,
    build_run,
    plan_runs,
    seed_everything,
    supports_batched,
    train,
    unsupported_reason,
)
from labelemb.training.recipe import lay_out
from labelemb.training.stacked import Stacked, StackedSettings
from labelemb.training.trainer import batched_groups

pytestmark = pytest.mark.usefixtures("one_thread")

CNN = ("model.name=cnn", "model.channels=[4, 8]", "model.hidden=16")


# ---------------------------------------------------------------- batched = sequential


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(("method.name=label_embedding",), id="mlp-label_embedding"),
        pytest.param(("method.name=onehot",), id="mlp-onehot"),
        pytest.param((*CNN, "method.name=label_embedding"), id="cnn-label_embedding"),
        pytest.param((*CNN, "method.name=onehot"), id="cnn-onehot"),
        pytest.param(("method.name=label_smoothing",), id="mlp-label_smoothing"),
        pytest.param(("method.name=confidence_penalty",), id="mlp-confidence_penalty"),
        pytest.param(("method.name=tfkd_reg",), id="mlp-tfkd_reg"),
        pytest.param((*CNN, "method.name=tfkd_reg"), id="cnn-tfkd_reg"),
        # Epoch-level and step-level state, and the dataset index LWR needs.
        pytest.param(("method.name=ols",), id="mlp-ols"),
        pytest.param(("method.name=lwr", "method.k=1"), id="mlp-lwr"),
        pytest.param(("method.name=lwal10_rpl",), id="mlp-lwal10_rpl"),
        # Per-example targets written at every step; a warm-up that ends at an epoch's end.
        pytest.param(("method.name=elr",), id="mlp-elr"),
        pytest.param(("method.name=nls", "method.warmup_epochs=1"), id="mlp-nls"),
        # The variants: a buffer that counts steps, and a compressed embedding (more parameters).
        pytest.param(("method.variant=nlp", "method.soft_warmup=10"), id="mlp-label_embedding-nlp"),
        pytest.param(("method.compressed_dim=4",), id="mlp-label_embedding-compressed"),
        # A low alpha switches the hinge penalty on; the paper's weights.
        pytest.param(
            ("method.alpha=0.15", "method.variant=paper", "method.tau=3"), id="mlp-label_embedding-paper"
        ),
        # The backbone at its own learning rate (two Adam groups), through an LR milestone.
        pytest.param(("model.lr_scale=0.1", "train.lr_milestones=[1]"), id="mlp-backbone-lr"),
        # Checks in mid-epoch, an LR milestone, a deeper MLP, a batch that does not divide the data.
        pytest.param(
            (
                "train.eval_every=500",
                "train.lr_milestones=[1]",
                "model.hidden=[32, 16]",
                "train.batch_size=64",
            ),
            id="mlp-schedule",
        ),
    ],
)
def test_batched_seeds_give_the_numbers_of_sequential_runs(small_config, digits, tmp_path, overrides):
    batched, sequential = run_both(small_config, tmp_path, digits, *overrides)
    for got, want in zip(batched, sequential):
        assert_same_batched_run(got, want, digits)


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        pytest.param("label_smoothing", [{"epsilon": 0.05}, {"epsilon": 0.25}, {"epsilon": 0.0}], id="ls"),
        pytest.param("ols", [{"alpha": 0.2}, {"alpha": 0.8}, {"alpha": 0.5}], id="ols"),
        # Its period differs per setting: each swaps its targets at its own epochs.
        pytest.param("lwr", [{"k": 1, "tau": 2.0}, {"k": 2, "tau": 6.0}, {"k": 1, "tau": 4.0}], id="lwr"),
        pytest.param(
            "label_embedding",
            [{"tau": 1.5, "alpha": 0.6}, {"tau": 6.0, "alpha": 0.95}, {"tau": 2.0, "alpha": 0.15}],
            id="label_embedding",
        ),
    ],
)
def test_settings_of_a_method_side_by_side_give_the_numbers_of_their_own_runs(
    small_config, digits, tmp_path, method, settings
):
    """A tuning round's trials (one seed, the method's own options differing, each in its own
    experiment folder) train side by side with each setting's numbers."""
    assert_settings_side_by_side_match_their_own_runs(small_config, digits, tmp_path, method, settings)


#: Three learning rates side by side, the schedule cutting them after the first epoch.
RATES = ("0.003", "0.0005", "0.001")


def rate_settings(small_config, root: Path, *extra: str) -> list:
    return [
        small_config(f"train.lr={rate}", *extra, output_dir=root, experiment=f"trial{i}", seed=0)
        for i, rate in enumerate(RATES)
    ]


def test_learning_rates_side_by_side_give_the_numbers_of_their_own_runs(small_config, digits, tmp_path):
    """A tuning round that searches train.lr: each row steps at its own rate, schedule included."""
    together = rate_settings(small_config, tmp_path / "together", "train.lr_milestones=[1]")
    summaries = train(together, dataset=digits, progress=False)
    assert [s["batched_seeds"] for s in summaries] == [3, 3, 3]
    for config in rate_settings(small_config, tmp_path / "alone", "train.lr_milestones=[1]"):
        train(config, dataset=digits)
    for i in range(len(RATES)):
        got, want = (
            tmp_path / root / f"trial{i}" / "label_embedding" / "seed0" for root in ("together", "alone")
        )
        assert_same_batched_run(got, want, digits)
    errors = {
        read_summary(tmp_path / "together" / f"trial{i}" / "label_embedding" / "seed0")["selected_test_error"]
        for i in range(3)
    }
    assert len(errors) == 3, "the rates must train differently"


def test_a_step_at_the_largest_rate_cut_to_a_row_s_share_is_that_row_s_own_step(small_config, digits):
    """By hand: Adam's first step moves each weight by lr * sign(gradient) (m / sqrt(v) = g / |g|)."""
    configs = rate_settings(small_config, Path("unused"))
    stacked = lay_out(
        [build_run(c, digits, torch.device("cpu"), Classification()) for c in configs],
        Classification(),
        torch.device("cpu"),
    )
    before = {name: p.detach().clone() for name, p in stacked.params.items()}
    stacked.step(digits.train, torch.stack([torch.arange(32)] * 3))
    for name, param in stacked.params.items():
        moved = param.detach() - before[name]
        for s, rate in enumerate(RATES):
            grad = param.grad[s]
            want = -float(rate) * grad / (grad.abs() + 1e-8)  # eps is Adam's, on sqrt(v) = |g|
            torch.testing.assert_close(moved[s], want, rtol=1e-4, atol=2e-7, msg=f"{name} row {s}")


def test_settings_that_change_a_method_s_tensors_are_refused_side_by_side(small_config, digits):
    configs = [
        small_config("method.compressed_dim=4", experiment="a"),
        small_config("method.compressed_dim=6", experiment="b"),
    ]
    with pytest.raises(BatchedConfigError, match="different shapes"):
        train(configs, dataset=digits, progress=False)


def test_settings_side_by_side_are_their_own_methods_over_the_methods_tensors_stacked():
    members = [methods.build("label_smoothing", in_features=4, num_classes=3, epsilon=e) for e in (0.0, 0.5)]
    side_by_side = StackedSettings(members)
    assert side_by_side.members == members and side_by_side.stacked.stacked_seeds == 2
    for name, stacked in side_by_side.stacked.named_parameters():
        torch.testing.assert_close(stacked, torch.stack([dict(m.named_parameters())[name] for m in members]))
    features, target = torch.randn(2, 5, 4), torch.randint(0, 3, (2, 5))
    losses = side_by_side(features, target).loss
    for s, member in enumerate(members):  # each its own epsilon, on its own slice
        torch.testing.assert_close(losses[s], member(features[s], target[s]).loss)


def test_methods_with_loaded_tables_train(small_config, digits, tmp_path):
    """label_embedding_fixed (a loaded, frozen E) and static_label (given class vectors)."""
    embedding = tmp_path / "embedding.safetensors"
    save_file({"embedding": 3.0 * torch.eye(10) + 0.1 * torch.rand(10, 10)}, str(embedding))
    vectors = tmp_path / "vectors.safetensors"
    save_file({"vectors": torch.nn.functional.normalize(torch.randn(10, 6), dim=-1)}, str(vectors))
    for overrides in (
        ("method.name=label_embedding_fixed", f"method.embedding={embedding}"),
        ("method.name=static_label", f"method.vectors={vectors}"),
    ):
        out = tmp_path / overrides[0].split("=")[1]
        batched, sequential = run_both(small_config, out, digits, *overrides)
        for got, want in zip(batched, sequential):
            assert_same_batched_run(got, want, digits)


@pytest.mark.parametrize("overrides", [(), CNN], ids=["mlp", "cnn"])
def test_the_stacked_backbone_computes_each_seeds_features(small_config, digits, overrides):
    """The grouped forward pass gives row s the features of seed s's own model."""
    seeds = build_runs([small_config(*overrides, seed=s) for s in SEEDS], digits)
    stack = Stacked(seeds, Classification(), torch.device("cpu"))
    images = digits.train.images[torch.arange(3 * 50).view(3, 50)]
    features = stack.features(images)
    for s, seed in enumerate(seeds):
        torch.testing.assert_close(features[s], seed.model(images[s]), rtol=1e-5, atol=1e-6)


def build_runs(configs, digits):
    return [build_run(config, digits, torch.device("cpu"), Classification()) for config in configs]


#: Every method in a setting where each of its terms and state updates is at work.
STACKED_METHODS = [
    ("onehot", {}),
    ("label_smoothing", {"epsilon": 0.2}),
    ("confidence_penalty", {"beta": 0.3}),
    ("tfkd_reg", {"temperature": 4.0, "alpha": 0.3}),
    ("label_embedding", {}),
    # alpha 0: the hinge is active on every row; paper: both first weights 1.
    ("label_embedding", {"alpha": 0.0, "tau": 3.0}),
    ("label_embedding", {"variant": "paper", "tau": 3.0}),
    ("label_embedding", {"variant": "nlp", "soft_warmup": 0, "alpha": 0.3}),
    ("label_embedding", {"compressed_dim": 3, "alpha": 0.0}),
    ("label_embedding_fixed", {"embedding": 2.0 * torch.eye(5) + 0.3}),
    ("ols", {}),
    ("lwr", {"num_examples": 60, "epochs": 4, "k": 1}),
    ("lwal", {"dim_factor": 2, "repel": 1.0}),
    ("static_label", {"vectors": torch.eye(5, 7) + 0.1}),
    ("focal", {"gamma": 2.0}),
    ("flsd53", {}),
    ("mbls", {"margin": 1.0, "alpha": 0.5}),  # a small margin: the hinge is at work
    ("logitnorm", {"tau": 0.5}),
    ("elogitnorm", {}),
    ("label_relaxation", {"alpha": 0.3}),
    ("zipf_ls", {"weight": 1.0, "power": 1.5}),
    ("lspp", {"alpha": 0.3}),  # C learns by the reverse CE
    ("lcm", {"alpha": 3.0}),
    ("pskd", {"num_examples": 60, "epochs": 4}),
    ("cskd", {"temperature": 3.0, "lam": 2.0}),  # rows 2k, 2k + 1 are its pairs
    ("maxsup", {"epochs": 3, "alpha": 0.3, "alpha_end": 0.9}),  # the epoch end moves its weight
    # Inverse focal at first; each seed's dev predictions then move its gammas, some across the switch.
    ("adafocal", {"gamma_initial": -1.0, "lam": 5.0}),
    ("acls", {"alpha": 0.5, "margin": 1.0}),  # a small margin: both hinges are at work
    ("dual_focal", {"gamma": 2.0}),
    ("mdca", {"beta": 2.0, "gamma": 1.0}),  # FL+MDCA: both classification losses' terms
    ("gce", {"q": 0.5}),
    ("sce", {"alpha": 0.3, "beta": 0.7}),
    ("nce_rce", {"alpha": 2.0, "beta": 0.5}),
    ("bootstrap_soft", {"beta": 0.7}),
    ("bootstrap_hard", {"beta": 0.6}),
    ("nls", {"smooth_rate": -0.5, "warmup_epochs": 1}),  # the epoch end switches the smoothing on
    ("elr", {"num_examples": 60, "beta": 0.6, "lam": 2.0}),  # each seed's targets, every step
    ("coteaching", {"forget_rate": 0.4, "gradual_epochs": 1}),
    ("forward_t", {"warmup_epochs": 1}),
]


def test_the_stacked_method_test_covers_every_registered_method():
    # Presets (lwal10, ...) are their class with other options: the class is what is checked.
    classes = {methods.method_class(name) for name in methods.serving("class")}
    assert classes == {methods.method_class(name) for name, _ in STACKED_METHODS}
    assert all(cls.stackable for cls in classes)


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
@pytest.mark.parametrize("name, options", STACKED_METHODS, ids=lambda v: v if isinstance(v, str) else "")
def test_a_stacked_method_gives_each_seeds_loss_terms_gradients_and_state(name, options, ignored):
    """One module whose tensors are the seeds' stacked = each seed's own method on its rows:
    loss, logged terms, every gradient, and the state it keeps (two steps and an epoch end)."""
    assert_stacked_method_matches_each_seed(name, options, ignored)


def test_the_grouped_linear_layer_has_the_gradients_of_its_formula():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, dtype=torch.double, requires_grad=True)
    weight = torch.randn(3, 6, 4, dtype=torch.double, requires_grad=True)
    bias = torch.randn(3, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(_GroupedLinear.apply, (x, weight, bias))
    assert torch.autograd.gradcheck(lambda x, w: _GroupedLinear.apply(x, w, None), (x, weight))
    expected = torch.stack([torch.nn.functional.linear(x[s], weight[s], bias[s]) for s in range(3)])
    torch.testing.assert_close(_GroupedLinear.apply(x, weight, bias), expected)


def test_each_seed_starts_from_its_sequential_initialisation(small_config, digits):
    seeds = build_runs([small_config("model.hidden=[16]", seed=s) for s in SEEDS], digits)
    stack = Stacked(seeds, Classification(), torch.device("cpu"))
    for s, seed_number in enumerate(SEEDS):
        seed_everything(seed_number)
        model, method = build_network(small_config("model.hidden=[16]", seed=seed_number), digits)
        expected = {f"model.{k}": v for k, v in model.named_parameters()}
        expected |= {f"method.{k}": v for k, v in method.named_parameters()}
        assert expected.keys() == stack.params.keys()
        for name, value in expected.items():
            assert torch.equal(stack.params[name][s], value), name


# ---------------------------------------------------------------- refusals and fallback


def test_only_runs_that_stack_train_side_by_side(small_config, tmp_path):
    """Runs that differ in more than the seed, the method's options, train.lr and the experiment
    train one after another, as do runs sharing a folder and runs whose setting cannot stack."""

    def groups(*configs: Any, batched: bool = True) -> list[tuple[list[int], bool]]:
        return batched_groups(plan_runs(list(configs)), batched)

    assert groups(small_config(seed=0), small_config(seed=1)) == [([0, 1], True)]
    assert groups(small_config(seed=0), small_config(seed=1), batched=False) == [([0, 1], False)]
    apart = [([0], False), ([1], False)]
    assert groups(small_config(seed=0), small_config("train.lr_gamma=0.5", seed=1)) == apart
    assert groups(small_config(seed=0), small_config("method.name=onehot", seed=1)) == apart
    # A backbone rate set outright is no share of train.lr: those rates cannot stack.
    outright = small_config("model.lr=0.001", seed=0), small_config("model.lr=0.001", "train.lr=0.01", seed=1)
    assert groups(*outright) == apart
    assert groups(small_config(seed=1), small_config(seed=1)) == [([0, 1], False)]
    assert groups(*(small_config("data.augment.flip=true", seed=s) for s in SEEDS)) == [([0, 1, 2], False)]
    assert train([], progress=False) == []
    assert not (tmp_path / "runs").exists(), "grouping runs must not write anything"


def test_a_config_that_fails_to_build_leaves_no_run_folder(small_config, digits, tmp_path):
    configs = [small_config(seed=s).model_copy(deep=True) for s in SEEDS]
    for config in configs:
        config.method.no_such_option = 1  # past build_config's check: train's own check refuses it
    with pytest.raises(ValueError, match="no_such_option"):
        train(configs, dataset=digits, progress=False)
    assert not (tmp_path / "runs").exists()


def test_unsupported_configs_say_why(small_config):
    assert supports_batched(small_config())
    assert supports_batched(small_config(*CNN, "method.name=onehot"))
    assert "resnet8" in unsupported_reason(small_config("model={name: resnet8}"))
    assert "augmentation" in unsupported_reason(small_config("data.augment.flip=true"))
    assert "bf16" in unsupported_reason(small_config("train.precision=bf16"))
    assert "compile" in unsupported_reason(small_config("train.compile=true"))


class _UncheckedMethod(methods.OneHot):
    """A method not written for stacked seeds: it must fall back."""

    stackable = False


def test_unsupported_runs_fall_back_to_sequential_with_the_same_results(
    small_config, digits, tmp_path, monkeypatch, caplog
):
    from labelemb.registry import Entry

    monkeypatch.setitem(methods.registry.METHODS._entries, "unchecked", Entry("unchecked", _UncheckedMethod))
    for overrides in (("method.name=unchecked",), ("data.augment.flip=true", "data.augment.crop_padding=1")):
        assert not supports_batched(small_config(*overrides))
        out = tmp_path / overrides[0]
        configs = [small_config(*overrides, output_dir=out / "seeds", seed=s) for s in SEEDS]
        with caplog.at_level(logging.WARNING, logger="labelemb.training.trainer"):
            summaries = train(configs, dataset=digits, progress=False)
        assert "one after another" in caplog.text
        caplog.clear()
        for config, summary in zip(configs, summaries):
            reference = small_config(*overrides, output_dir=out / "reference", seed=config.seed)
            want = train(reference, dataset=digits)
            assert "batched_seeds" not in summary
            # The fallback is the sequential trainer itself: identical numbers.
            assert untimed(read_metrics(config.run_dir())) == untimed(read_metrics(reference.run_dir()))
            assert {k: v for k, v in summary.items() if k not in TIMING} == {
                k: v for k, v in want.items() if k not in TIMING
            }


def test_train_batches_each_config_over_its_seeds(small_config, digits, tmp_path):
    configs = [
        small_config(f"method.name={name}", output_dir=tmp_path / "b", seed=seed)
        for seed in (0, 1)
        for name in ("onehot", "label_embedding")
    ]
    summaries = train(configs, dataset=digits, progress=False)
    assert [(s["method"], s["seed"]) for s in summaries] == [(c.method.name, c.seed) for c in configs]
    for config, summary in zip(configs, summaries):
        assert summary["batched_seeds"] == 2
        reference = config.model_copy(update={"output_dir": str(tmp_path / "s")})
        want = train(reference, dataset=digits)
        assert_same_metrics(config.run_dir(), reference.run_dir(), digits)
        assert_same_summary(dict(summary), want, read_metrics(reference.run_dir()), digits, batched_seeds=2)


# ---------------------------------------------------------------- crashes, resuming, finished seeds


def crash_after(checks: int) -> Any:
    calls = []

    def on_checkpoint(progress: list[Any]) -> None:
        calls.append(progress[0].step)
        if len(calls) == checks:
            raise Interrupted

    return on_checkpoint


RESUMABLE = ("train.eval_every=300", "train.lr_milestones=[1]")


def test_a_crashed_batched_run_resumes_batched_to_the_uninterrupted_numbers(small_config, digits, tmp_path):
    crashed = [small_config(*RESUMABLE, output_dir=tmp_path / "crashed", seed=s) for s in SEEDS]
    with pytest.raises(Interrupted):
        train(crashed, dataset=digits, progress=False, on_checkpoint=crash_after(3))
    for config in crashed:
        run_dir = config.run_dir()
        assert not (run_dir / "summary.json").exists()
        assert (run_dir / "checkpoint.pt").exists() and len(read_metrics(run_dir)) == 3
        assert not list(run_dir.glob(".*.tmp")), "a crash must leave no half-written file"
    train(crashed, dataset=digits, progress=False)

    clean = [small_config(*RESUMABLE, output_dir=tmp_path / "clean", seed=s) for s in SEEDS]
    train(clean, dataset=digits, progress=False)
    for got, want in zip(crashed, clean):
        # Same process, same kernels, state restored exactly: the very same numbers.
        assert untimed(read_metrics(got.run_dir())) == untimed(read_metrics(want.run_dir()))
        weights = torch.load(got.run_dir() / "model.pt", weights_only=True)
        for key, value in torch.load(want.run_dir() / "model.pt", weights_only=True).items():
            assert torch.equal(weights[key], value), key


def test_a_crashed_batched_run_resumes_sequentially_and_the_reverse(small_config, digits, tmp_path):
    """Batched checkpoints are sequential checkpoints: either trainer carries on from either."""
    configs = [small_config(*RESUMABLE, output_dir=tmp_path / "mixed", seed=s) for s in SEEDS]
    with pytest.raises(Interrupted):
        train(configs, dataset=digits, progress=False, on_checkpoint=crash_after(2))
    train(configs[0], dataset=digits)  # seed 0 finishes sequentially from the batched checkpoint
    finished = (configs[0].run_dir() / "summary.json").read_bytes()
    # Seed 1 goes one check further sequentially, so it resumes alone; seed 2 restarts afresh.
    checks = []

    def stop_at_next_check(progress: Any) -> None:
        checks.append(progress.step)
        if len(checks) == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(configs[1], dataset=digits, on_checkpoint=stop_at_next_check)
    for name in ("checkpoint.pt", "metrics.jsonl"):
        (configs[2].run_dir() / name).unlink()
    seed3 = small_config(*RESUMABLE, output_dir=tmp_path / "mixed", seed=3)
    summaries = train([*configs, seed3], dataset=digits, progress=False)
    assert (configs[0].run_dir() / "summary.json").read_bytes() == finished, "a finished seed was retrained"
    assert [s["seed"] for s in summaries] == [0, 1, 2, 3]
    assert "batched_seeds" not in summaries[1]  # alone at its step: the sequential trainer
    assert summaries[2]["batched_seeds"] == summaries[3]["batched_seeds"] == 2

    for config in [*configs, seed3]:
        reference = config.model_copy(update={"output_dir": str(tmp_path / "sequential")})
        want = train(reference, dataset=digits)
        assert_same_metrics(config.run_dir(), reference.run_dir(), digits)
        got = read_summary(config.run_dir())
        got.setdefault("batched_seeds", None)
        assert_same_summary(
            got, want, read_metrics(reference.run_dir()), digits, batched_seeds=got["batched_seeds"]
        )


def test_learning_rates_side_by_side_resume_alone_at_their_own_rates(small_config, digits, tmp_path):
    """A checkpoint written side by side holds each run's own rate and schedule: resumed on its
    own, each run ends with the numbers of an uninterrupted run of its own."""
    configs = rate_settings(small_config, tmp_path / "crashed", *RESUMABLE)
    with pytest.raises(Interrupted):
        train(configs, dataset=digits, progress=False, on_checkpoint=crash_after(2))
    for i, config in enumerate(configs):
        state = torch.load(config.run_dir() / "checkpoint.pt", weights_only=False)
        assert state["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(
            float(RATES[i]), rel=1e-12
        )
        assert state["scheduler"]["base_lrs"] == [pytest.approx(float(RATES[i]), rel=1e-12)]
        train(config, dataset=digits)
    for config in rate_settings(small_config, tmp_path / "alone", *RESUMABLE):
        train(config, dataset=digits)
    for i in range(len(RATES)):
        got, want = (
            tmp_path / root / f"trial{i}" / "label_embedding" / "seed0" for root in ("crashed", "alone")
        )
        assert_same_metrics(got, want, digits)
