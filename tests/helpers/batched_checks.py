"""Stacked seeds, or a tuning round's settings side by side, give the numbers of their own runs.

"The same" means: the same checks (step, epoch, examples), dev and test error equal or one example
apart (the test predictions' calibration likewise: ECE within one example's share, NLL within 1e-3
relative), training losses within 1e-4 relative, the same summary (errors and calibration likewise),
and weights within rounding: batched and single matrix products, and the fused and plain Adam
kernels, may round differently in the last bit. A stacked method is each seed's own method on its
rows: loss, terms, gradients and state.

The test files share these (``from batched_checks import run_both``): tests/ is on the path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from helpers.run_checks import TIMING, load_weights, read_metrics, read_summary
from labelemb import methods
from labelemb.stacking import stack_modules, unstack_into
from labelemb.tasks.calibration import CALIBRATION_FIELDS, DEV_FIELDS, SCALED
from labelemb.training import train

SEEDS = (0, 1, 2)
ERRORS = {"dev_error", "test_error"}
SUMMARY_ERRORS = {"selected_test_error", "selected_dev_error", "final_test_error", "final_dev_error"}
#: The calibration of the test predictions, raw and scaled, the fitted temperature and the dev
#: split's figures (record keys; the summary's are ``selected_<key>``).
CALIBRATION = {*CALIBRATION_FIELDS, *DEV_FIELDS}
#: Calibration figures in % of the examples, which one flipped prediction moves by its share.
PERCENT_FIGURES = ("ece", "adaece", "classwise_ece", "mce")


def train_batched(configs: list[Any], **options: Any) -> list[dict[str, Any]]:
    """:func:`labelemb.training.train` of runs a test means to train side by side (no bars): a test
    of the side-by-side numbers must fail, not pass trivially, where they trained one after another."""
    options.setdefault("progress", False)
    summaries = train(list(configs), **options)
    alone = [i for i, summary in enumerate(summaries) if "batched_seeds" not in summary]
    assert not alone, f"the runs at {alone} trained one after another, not side by side"
    return summaries


def one_example(digits) -> float:
    """One example of the dev or test split, in percent (both hold 300)."""
    assert len(digits.dev) == len(digits.test)
    return 100.0 / len(digits.test) + 1e-9


def assert_close_loss(name: str, got: float, want: float) -> None:
    assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6), f"{name}: batched {got}, sequential {want}"


def assert_close_calibration(what: str, got: Any, want: Any, digits) -> None:
    """Calibration of predictions that may differ as the errors may: by one flipped prediction
    (ECE, in %, by at most one example's share), confidences and likelihoods by rounding, and a
    confidence by a rounding across a bin edge (one example moved between two bins)."""
    figure = what.split()[-1].removeprefix("selected_").removesuffix(SCALED).split("_", 1)[-1]
    if figure == "aurc":
        # One prediction flipped at rank r adds 1 / k to the risk of every k >= r: at most
        # (1 + ln N) / N of the mean, in % (and a reordered pair of near-equal confidences far less).
        bound = one_example(digits) * (1 + math.log(len(digits.dev))) + 1e-3
        assert abs(got - want) <= bound, f"{what}: {got} vs {want}"
    elif figure in PERCENT_FIGURES:
        assert abs(got - want) <= one_example(digits) + 1e-3, f"{what}: {got} vs {want}"
    elif not isinstance(got, dict):  # nll, brier, the temperature
        assert math.isclose(got, want, rel_tol=1e-3), f"{what}: {got} vs {want}"
    else:
        assert got["bins"] == want["bins"] and sum(got["counts"]) == sum(want["counts"]), what
        moved = sum(abs(g - w) for g, w in zip(got["counts"], want["counts"]))
        assert moved <= 2, f"{what}: counts {got['counts']} vs {want['counts']}"


def assert_same_metrics(batched: Path, sequential: Path, digits) -> None:
    got, want = read_metrics(batched), read_metrics(sequential)
    assert len(got) == len(want), f"{batched}: {len(got)} checks, sequential {len(want)}"
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in w:
            if key in TIMING:
                continue
            if key in ERRORS:
                assert abs(g[key] - w[key]) <= one_example(digits), (
                    f"step {w['step']} {key}: {g[key]} vs {w[key]}"
                )
            elif key.startswith("train_"):
                assert_close_loss(f"step {w['step']} {key}", g[key], w[key])
            elif key in CALIBRATION:
                assert_close_calibration(f"step {w['step']} {key}", g[key], w[key], digits)
            else:
                assert g[key] == w[key], f"{key}: batched {g[key]}, sequential {w[key]}"


def assert_same_summary(
    got: dict[str, Any],
    want: dict[str, Any],
    want_records: list[dict[str, Any]],
    digits,
    batched_seeds: int = 3,
) -> None:
    """Same summary; errors may be one example apart, and so the selected check may differ,
    provided the sequential run's dev error there was as good, give or take one example."""
    assert got.pop("batched_seeds") == batched_seeds
    assert got.keys() == want.keys()
    for key in want:
        if key in TIMING:
            continue
        if key in SUMMARY_ERRORS and want[key] is not None:
            assert abs(got[key] - want[key]) <= one_example(digits), f"{key}: {got[key]} vs {want[key]}"
        elif key.removeprefix("selected_") in CALIBRATION and got["selected_step"] == want["selected_step"]:
            assert_close_calibration(f"summary {key}", got[key], want[key], digits)
        elif key.removeprefix("selected_") in CALIBRATION:
            # Another check selected (as above): its calibration is that check's.
            there = {r["step"]: r for r in want_records}[got["selected_step"]]
            assert_close_calibration(f"summary {key}", got[key], there[key.removeprefix("selected_")], digits)
        elif key in ("selected_step", "selected_epoch") and got[key] != want[key]:
            there = {r["step"]: r for r in want_records}[got["selected_step"]]
            assert abs(there["dev_error"] - want["selected_dev_error"]) <= one_example(digits), key
        else:
            assert got[key] == want[key], f"summary {key}: batched {got[key]}, sequential {want[key]}"


def assert_close_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], what: str) -> None:
    assert got.keys() == want.keys(), what
    for key in want:
        assert got[key].shape == want[key].shape, f"{what} {key}"
        if want[key].is_floating_point():
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=f"{what} {key}")
        else:
            assert torch.equal(got[key], want[key]), f"{what} {key}"


def assert_same_batched_run(batched: Path, sequential: Path, digits, batched_seeds: int = 3) -> None:
    """Metrics, summary, weights, label representation and checkpoint of two run folders agree."""
    assert_same_metrics(batched, sequential, digits)
    assert_same_summary(
        read_summary(batched), read_summary(sequential), read_metrics(sequential), digits, batched_seeds
    )
    assert_close_tensors(load_weights(batched), load_weights(sequential), f"{batched} model.pt")
    representation = sequential / "label_representation.safetensors"
    assert (batched / representation.name).exists() == representation.exists()
    if representation.exists():
        got = load_file(str(batched / representation.name))
        assert_close_tensors(got, load_file(str(representation)), f"{batched} representation")
    # The checkpoint is the sequential trainer's, down to the optimizer's settings and state.
    got = torch.load(batched / "checkpoint.pt", map_location="cpu", weights_only=True)
    want = torch.load(sequential / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert got.keys() == want.keys()
    assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    assert got["scheduler"] == want["scheduler"]
    assert torch.equal(got["torch_rng"], want["torch_rng"])
    for index, state in want["optimizer"]["state"].items():
        assert_close_tensors(got["optimizer"]["state"][index], state, f"Adam state {index}")


def run_both(small_config, tmp_path: Path, digits, *overrides: str) -> tuple[list[Path], list[Path]]:
    """Seeds 0-2 batched and one after another; their run folders, batched first."""
    batched = [small_config(*overrides, output_dir=tmp_path / "batched", seed=s) for s in SEEDS]
    sequential = [small_config(*overrides, output_dir=tmp_path / "sequential", seed=s) for s in SEEDS]
    summaries = train_batched(batched, dataset=digits)
    assert [s["seed"] for s in summaries] == list(SEEDS)
    for config in sequential:
        train(config, dataset=digits)
    return [c.run_dir() for c in batched], [c.run_dir() for c in sequential]


def assert_settings_side_by_side_match_their_own_runs(
    small_config, digits, tmp_path: Path, method: str, settings: list[dict[str, Any]]
) -> None:
    """A tuning round's trials (one seed, the method's own options differing, each in its own
    experiment folder) train side by side with each setting's numbers."""

    def configs(root: str) -> list:
        return [
            small_config(
                f"method.name={method}",
                *(f"method.{key}={value}" for key, value in setting.items()),
                output_dir=tmp_path / root,
                experiment=f"trial{i}",
                seed=0,
            )
            for i, setting in enumerate(settings)
        ]

    together = configs("together")
    summaries = train(together, dataset=digits, progress=False)
    assert [s["batched_seeds"] for s in summaries] == [3, 3, 3]
    for config in configs("alone"):
        train(config, dataset=digits)
    for i in range(len(settings)):
        got, want = (tmp_path / root / f"trial{i}" / method / "seed0" for root in ("together", "alone"))
        assert_same_batched_run(got, want, digits)


def assert_stacked_method_matches_each_seed(name: str, options: dict[str, Any], ignored: bool) -> None:
    """One module whose tensors are the seeds' stacked = each seed's own method on its rows:
    loss, logged terms, every gradient, and the state it keeps (two steps and an epoch end, each
    seed's own dev predictions before it for a method that reads them); ``ignored``: every fourth
    label is -100."""
    torch.manual_seed(0)
    num_seeds, batch, width, m = 3, 20, 16, 5
    heads = [methods.build(name, in_features=width, num_classes=m, **options) for _ in range(num_seeds)]
    for head in heads:  # away from the start, so that every term is at work
        for param in head.parameters():
            param.data.add_(0.5 * torch.randn_like(param))
    stacked = stack_modules(heads)
    for step in range(2):
        features = torch.randn(num_seeds, batch, width, requires_grad=True)
        labels = torch.randint(0, m, (num_seeds, batch))
        if ignored:
            labels[:, ::4] = -100
        index = torch.stack([torch.randperm(60)[:batch] for _ in range(num_seeds)])
        needs = {"index": index} if stacked.needs_index else {}
        for param in stacked.parameters():
            param.grad = None
        out = stacked(features, labels, **needs)
        assert out.loss.shape == (num_seeds,)
        out.loss.sum().backward()
        for s, head in enumerate(heads):
            head.zero_grad()
            rows = features[s].detach().requires_grad_()
            own = head(rows, labels[s], **({"index": index[s]} if head.needs_index else {}))
            own.loss.backward()
            where = f"{name} {options} step {step} seed {s}"
            torch.testing.assert_close(out.loss[s], own.loss.detach(), rtol=1e-5, atol=1e-6, msg=where)
            assert out.terms.keys() == own.terms.keys()
            for key, value in own.terms.items():
                torch.testing.assert_close(
                    out.terms[key][s], value, rtol=1e-5, atol=1e-6, msg=f"{where} {key}"
                )
            torch.testing.assert_close(out.logits[s], own.logits.detach(), rtol=1e-5, atol=1e-5, msg=where)
            torch.testing.assert_close(features.grad[s], rows.grad, rtol=1e-4, atol=1e-6, msg=where)
            for key, param in head.named_parameters():
                got = dict(stacked.named_parameters())[key].grad
                if param.grad is None:
                    assert got is None or not got[s].any(), f"{where} {key}"
                else:
                    torch.testing.assert_close(got[s], param.grad, rtol=1e-4, atol=1e-6, msg=f"{where} {key}")
        if stacked.reads_dev:  # each seed's own dev predictions, before the epoch's end
            dev_logits = 3.0 * torch.randn(num_seeds, 40, m)
            dev_labels = torch.randint(0, m, (40,))
            if ignored:
                dev_labels[::4] = -100
            with torch.no_grad():
                stacked.on_dev_predictions(dev_logits, dev_labels.expand(num_seeds, -1))
                for s, head in enumerate(heads):
                    head.on_dev_predictions(dev_logits[s], dev_labels)
        stacked.on_epoch_end()
        for head in heads:
            head.on_epoch_end()
        for key in dict(heads[0].named_buffers()):
            for s, head in enumerate(heads):
                want = dict(head.named_buffers())[key]
                torch.testing.assert_close(dict(stacked.named_buffers())[key][s], want, msg=f"{name} {key}")
    copies = [methods.build(name, in_features=width, num_classes=m, **options) for _ in range(num_seeds)]
    unstack_into(stacked, copies)
    for copy, head in zip(copies, heads):
        for key, value in head.state_dict().items():
            torch.testing.assert_close(copy.state_dict()[key], value, rtol=0, atol=0)
