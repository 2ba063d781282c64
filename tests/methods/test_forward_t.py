"""Forward loss correction (Patrini et al. 2017): the loss against hand-computed values, the
identity matrix giving cross-entropy, the anchor-point estimate of T, and the checks of a given T."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.batched_checks import assert_stacked_method_matches_each_seed
from helpers.run_checks import assert_same_resumed_run, interrupt_at_first_checkpoint

from labelemb import methods
from labelemb.training import train

pytestmark = pytest.mark.usefixtures("one_thread")

#: A noise matrix whose every column is largest on its diagonal: the anchor of class i is row i.
T = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.35, 0.6]]


def identity_head(method: methods.Method) -> methods.Method:
    """Logits = features (3 classes, 3 features), so a row's features are the logits it gets."""
    with torch.no_grad():
        method.output.weight.copy_(torch.eye(3))
        method.output.bias.zero_()
    return method


def forward_t(**options) -> methods.Method:
    return identity_head(methods.build("forward_t", in_features=3, num_classes=3, **options))


# ---------------------------------------------------------------- the loss


def test_the_loss_is_minus_log_of_the_noisy_label_s_probability_under_p_t():
    method = forward_t(noise_transition=T)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    labels = torch.tensor([1, 2])
    out = method(logits, labels)
    want = []
    for row, label in zip(logits.tolist(), labels.tolist()):
        norm = sum(math.exp(z) for z in row)
        p = [math.exp(z) / norm for z in row]
        want.append(-math.log(sum(p[i] * T[i][label] for i in range(3))))
    assert float(out.loss.detach()) == pytest.approx(sum(want) / 2, rel=1e-6)
    assert float(out.terms["ce"]) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    torch.testing.assert_close(out.logits, logits)  # prediction: p, uncorrected


def test_with_the_identity_it_is_cross_entropy():
    method = methods.build("forward_t", in_features=6, num_classes=4, noise_transition=np.eye(4).tolist())
    features, labels = torch.randn(32, 6, requires_grad=True), torch.randint(0, 4, (32,))
    out = method(features, labels)
    want = F.cross_entropy(method.logits(features), labels)
    torch.testing.assert_close(out.loss, want)
    (grad,) = torch.autograd.grad(out.loss, features)
    (want_grad,) = torch.autograd.grad(want, features)
    torch.testing.assert_close(grad, want_grad)


def test_a_given_file_wins_over_the_run_s_matrix_and_estimate_ignores_the_run_s(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.array(T))
    given = forward_t(transition=str(path), noise_transition=np.eye(3).tolist())
    torch.testing.assert_close(given.transition_matrix, torch.tensor(T))
    assert not given.estimating and given.corrects(0)
    estimated = forward_t(noise_transition=T, estimate=True, warmup_epochs=2)
    assert estimated.estimating and not estimated.corrects(1) and estimated.corrects(2)
    torch.testing.assert_close(estimated.transition_matrix, torch.eye(3))


# ---------------------------------------------------------------- the estimate


def test_the_anchor_estimate_recovers_a_known_t():
    method = forward_t(warmup_epochs=2)
    rows = torch.tensor(T)
    mixtures = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [0.4, 0.3, 0.3]]) @ rows
    first = torch.cat([mixtures[:2], rows[2:]])  # each batch holds some anchors
    second = torch.cat([rows[:2], mixtures[2:]])
    labels = torch.tensor([0, 1, 2, 0])
    for epoch in range(2):
        for probabilities in (first, second):
            out = method(probabilities.log(), labels[: len(probabilities)])
            # Warm-up: plain cross-entropy.
            torch.testing.assert_close(
                out.loss, F.cross_entropy(probabilities.log(), labels[: len(probabilities)])
            )
        if epoch == 0:  # only the last warm-up epoch looks for anchors
            assert (method.anchor_score == -1).all()
        method.on_epoch_end()
    torch.testing.assert_close(method.transition_matrix, rows)
    torch.testing.assert_close(method.artifacts()["transition"], rows)
    logits, label = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([2])
    noisy = (F.softmax(logits, dim=-1) @ rows)[0, 2]
    torch.testing.assert_close(method(logits, label).loss, -noisy.log())


def test_the_estimate_resumes_from_its_buffers_and_a_class_no_row_reached_keeps_its_identity_row():
    method = forward_t(warmup_epochs=1)
    probabilities = torch.tensor([T[0], [0.15, 0.8, 0.05]])
    method(probabilities.log(), torch.tensor([0, 1]))
    resumed = forward_t(warmup_epochs=1)
    resumed.load_state_dict(method.state_dict())  # mid-epoch: the anchors are in the checkpoint
    resumed.on_epoch_end()
    method.on_epoch_end()
    torch.testing.assert_close(resumed.transition_matrix, method.transition_matrix)
    # Class 2's largest p_2 (0.1) was reached by row 0: its row is row 0's p.
    torch.testing.assert_close(method.transition_matrix[2], torch.tensor(T[0]))
    ignored = forward_t(warmup_epochs=1)
    ignored(probabilities.log(), torch.tensor([0, -100]))
    ignored.on_epoch_end()
    # Only row 0 counted: it is every class's anchor.
    torch.testing.assert_close(ignored.transition_matrix, torch.tensor(T[0]).expand(3, 3))


def test_warmup_epochs_defaults_to_half_the_run_and_needs_one_of_them():
    assert forward_t(epochs=7).warmup_epochs == 3
    assert forward_t(epochs=1).warmup_epochs == 1
    with pytest.raises(ValueError, match="set warmup_epochs="):
        forward_t()
    with pytest.raises(ValueError, match="warmup_epochs .* must be >= 1"):
        forward_t(warmup_epochs=0)


@pytest.mark.parametrize("ignored", [False, True], ids=["all-rows", "ignored-rows"])
@pytest.mark.parametrize(
    "options", [{"warmup_epochs": 1}, {"noise_transition": (0.5 * np.eye(5) + 0.1).tolist()}]
)
def test_stacked_seeds_match_each_seed_s_own_method(options, ignored):
    assert_stacked_method_matches_each_seed("forward_t", options, ignored)


def test_a_run_interrupted_in_its_last_warm_up_epoch_resumes_to_the_same_numbers(
    small_config, digits, tmp_path
):
    overrides = ("method.name=forward_t", "method.warmup_epochs=1", "train.epochs=2", "train.eval_every=300")
    clean = small_config(*overrides, output_dir=tmp_path / "clean")
    crashed = small_config(*overrides, output_dir=tmp_path / "crashed")
    train(clean, dataset=digits)
    interrupt_at_first_checkpoint(crashed, digits, epoch=0)
    train(crashed, dataset=digits)
    assert_same_resumed_run(crashed.run_dir(), clean.run_dir())


# ---------------------------------------------------------------- a bad matrix


def write(path, matrix) -> str:
    if path.suffix == ".npy":
        np.save(path, np.asarray(matrix))
    else:
        np.savetxt(path, np.asarray(matrix), delimiter=",")
    return str(path)


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
@pytest.mark.parametrize(
    ("matrix", "problem"),
    [
        ([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], "is square"),
        (np.eye(4), "must be 3 x 3, got 4 x 4"),
        ([[1.1, -0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], r"T\[0, 1\] = -0.1 is negative"),
        ([[0.5, 0.4, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "row 0 sums to 0.9"),
        ([[np.nan, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "not finite"),
    ],
    ids=["not-square", "wrong-size", "negative", "row-sum", "nan"],
)
def test_a_bad_matrix_file_is_one_clear_line(tmp_path, suffix, matrix, problem):
    path = write(tmp_path / f"t{suffix}", matrix)
    with pytest.raises(ValueError, match=problem) as caught:
        forward_t(transition=path)
    assert "\n" not in str(caught.value) and path in str(caught.value)


def test_a_file_that_is_not_a_matrix_file_is_one_clear_line(tmp_path):
    cases = {
        str(tmp_path / "t.txt"): "is a .npy or .csv file",
        str(tmp_path / "absent.npy"): "no such file",
    }
    (tmp_path / "t.txt").write_text("1,0\n0,1\n")
    (tmp_path / "words.csv").write_text("a,b,c\nd,e,f\ng,h,i\n")
    cases[str(tmp_path / "words.csv")] = "cannot read a matrix"
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases[str(tmp_path / "objects.npy")] = "cannot read a matrix"
    for path, problem in cases.items():
        with pytest.raises(ValueError, match=problem) as caught:
            forward_t(transition=path)
        assert "\n" not in str(caught.value), path
    with pytest.raises(ValueError, match="rows of equal length"):
        forward_t(noise_transition=[[1.0, 0.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="set one of the two"):
        forward_t(transition=write(tmp_path / "t.npy", T), estimate=True)


def test_a_class_without_examples_in_the_run_s_matrix_keeps_its_label(tmp_path):
    told = [[0.8, 0.2, 0.0], [0.0, 0.0, 0.0], [0.1, 0.0, 0.9]]  # class 1: no training example
    method = forward_t(noise_transition=told)
    torch.testing.assert_close(method.transition_matrix[1], torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="row 1 sums to 0"):  # a user's file is taken as written
        forward_t(transition=write(tmp_path / "t.csv", told))
    with pytest.raises(ValueError, match="must be 3 x 3, got 2 x 2"):
        methods.build("forward_t", in_features=3, num_classes=3, noise_transition=[[1, 0], [0, 1]])


def test_rows_within_the_tolerance_are_renormalised(tmp_path):
    path = write(tmp_path / "t.csv", [[0.333, 0.333, 0.333], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    method = forward_t(transition=path)
    torch.testing.assert_close(method.transition_matrix.sum(-1), torch.ones(3))


def test_a_transition_file_is_an_option_a_bundle_copies_into_itself():
    # An option typed as a path is copied into an exported bundle and read from there, so a
    # bundle never names a file outside its folder (labelemb.predict.bundle_config).
    from labelemb.methods import method_class
    from labelemb.predict.bundle_config import _names_a_file

    assert _names_a_file(method_class("forward_t"), "transition")
    assert not _names_a_file(method_class("forward_t"), "noise_transition")
