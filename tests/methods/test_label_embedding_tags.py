"""The label embedding for tag sets (methods/label_embedding/tags.py) against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from labelemb import methods
from labelemb.methods.label_embedding.tags import TAG_TERMS, tag_embedding_loss, tag_rows


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def bce(z: float, t: float) -> float:
    return -(t * math.log(sigmoid(z)) + (1.0 - t) * math.log(1.0 - sigmoid(z)))


def by_hand(z1, z2, embedding, tags, w_gold, w_soft, tau, alpha):
    n_rows, k_tags = len(tags), len(tags[0])
    scale = math.log(k_tags - 1)
    q = [[sigmoid(scale * (2 * embedding[k][j] - 1)) for j in range(k_tags)] for k in range(k_tags)]
    ce_o1 = soft_o1 = ce_o2 = penalty = 0.0
    emb_sum, pairs = 0.0, 0
    for n in range(n_rows):
        carried = [k for k in range(k_tags) if tags[n][k]]
        soft = [sum(q[k][j] for k in carried) / len(carried) for j in range(k_tags)]
        for j in range(k_tags):
            ce_o1 += bce(z1[n][j], tags[n][j])
            soft_o1 += bce(z1[n][j], soft[j])
            ce_o2 += bce(z2[n][j], tags[n][j])
        for k in carried:
            penalty += max(0.0, sigmoid(z2[n][k]) - alpha)
            if z2[n][k] > 0:  # o2 is right about tag k: row k learns o2's softened outputs
                pairs += 1
                for j in range(k_tags):
                    target = sigmoid(z2[n][j] / tau)
                    emb_sum += bce(scale * (2 * embedding[k][j] - 1), target)
    terms = [ce_o1 / n_rows, soft_o1 / n_rows, ce_o2 / n_rows, emb_sum / (pairs + 1e-8), penalty / n_rows]
    loss = w_gold * terms[0] + w_soft * terms[1] + terms[2] + terms[3] + terms[4]
    return loss, dict(zip(TAG_TERMS, terms))


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(3)
    z1 = torch.randn(4, 5, generator=generator, dtype=torch.float64) * 2
    z2 = torch.randn(4, 5, generator=generator, dtype=torch.float64) * 3
    embedding = torch.eye(5, dtype=torch.float64) + 0.2 * torch.randn(
        5, 5, generator=generator, dtype=torch.float64
    )
    tags = torch.tensor(
        [[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool
    )
    return z1, z2, embedding, tags


def test_every_term_is_the_hand_computation(batch):
    z1, z2, embedding, tags = batch
    options = {"w_gold": 0.5, "w_soft": 0.5, "tau": 2.0, "alpha": 0.9}
    loss, terms = tag_embedding_loss(z1, z2, embedding, tags, **options)
    hand_loss, hand_terms = by_hand(z1.tolist(), z2.tolist(), embedding.tolist(), tags.tolist(), **options)
    assert set(terms) == set(TAG_TERMS)
    for name in TAG_TERMS:
        assert terms[name].item() == pytest.approx(hand_terms[name], rel=1e-10), name
    assert loss.item() == pytest.approx(hand_loss, rel=1e-10)
    # The batch has pairs in the mask and a penalty that acts: each term is tested, not zero.
    assert all(abs(hand_terms[name]) > 1e-6 for name in TAG_TERMS), hand_terms


def test_the_identity_starts_each_row_at_its_own_tag():
    rows = torch.sigmoid(tag_rows(torch.eye(5)))
    assert torch.allclose(rows.diagonal(), torch.full((5,), 4 / 5))
    assert torch.allclose(rows[~torch.eye(5, dtype=torch.bool)], torch.full((20,), 1 / 5))


def test_gradients_reach_what_each_term_teaches(batch):
    z1, z2, embedding, tags = (t.clone().requires_grad_(t.dtype != torch.bool) for t in batch)
    options = {"w_gold": 0.5, "w_soft": 0.5, "tau": 2.0, "alpha": 0.9}
    _, terms = tag_embedding_loss(z1, z2, embedding, tags, **options)
    teaches = {"ce_o1": z1, "soft_o1": z1, "ce_o2": z2, "emb": embedding, "penalty": z2}
    for name, learner in teaches.items():
        grads = torch.autograd.grad(terms[name], (z1, z2, embedding), retain_graph=True, allow_unused=True)
        for tensor, grad in zip((z1, z2, embedding), grads):
            reaches = grad is not None and bool(grad.abs().sum() > 0)
            assert reaches == (tensor is learner), f"{name}: gradient reaches the wrong tensor"


def test_gradcheck_of_the_predicting_head(batch):
    # Only z1: the soft target and o2's softened outputs are constants to the loss (sg), which a
    # finite difference in E or z2 would not know.
    z1, z2, embedding, tags = batch

    def loss(a):
        return tag_embedding_loss(a, z2, embedding, tags, w_gold=0.5, w_soft=0.5, tau=2.0, alpha=0.9)[0]

    assert torch.autograd.gradcheck(loss, (z1.clone().requires_grad_(),))


def test_stacked_seeds_are_each_seeds_own_loss(batch):
    z1, z2, embedding, tags = batch
    options = {"w_gold": 0.5, "w_soft": 0.5, "tau": 2.0, "alpha": 0.9}
    stacked_loss, stacked_terms = tag_embedding_loss(
        torch.stack([z1, -z1]),
        torch.stack([z2, z2 * 0.5]),
        torch.stack([embedding, embedding.T]),
        torch.stack([tags, tags]),
        **options,
    )
    for s, (a, b, e) in enumerate(((z1, z2, embedding), (-z1, z2 * 0.5, embedding.T))):
        loss, terms = tag_embedding_loss(a, b, e, tags, **options)
        assert torch.allclose(stacked_loss[s], loss)
        assert all(torch.allclose(stacked_terms[name][s], terms[name]) for name in TAG_TERMS)


def test_the_method_trains_on_tag_sets_with_this_loss_and_shows_its_tag_rows(batch):
    _, _, _, tags = batch
    torch.manual_seed(0)
    method = methods.build("label_embedding", in_features=3, num_classes=5)
    features = torch.randn(4, 3)
    out = method(features, tags)
    z1, z2 = method._both_outputs(features)
    options = {"w_gold": 0.5, "w_soft": 0.5, "tau": 2.0, "alpha": 0.9}
    loss, terms = tag_embedding_loss(z1, z2, method.embedding, tags, **options)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.logits, method.logits(features))
    assert set(out.terms) == set(TAG_TERMS)
    # The batch twice: every term a mean (of rows, or of the pairs the mask keeps), so the same loss.
    torch.testing.assert_close(method(features.repeat(2, 1), tags.repeat(2, 1)).loss, out.loss)
    # What it saves as its label representation: each tag's row of probabilities.
    torch.testing.assert_close(method.label_representation(), torch.sigmoid(tag_rows(method.embedding)))


@pytest.mark.parametrize("options", [{"variant": "nlp"}, {"compressed_dim": 2}])
def test_a_compressed_or_nlp_embedding_is_refused_on_tag_sets(batch, options):
    method = methods.build("label_embedding", in_features=3, num_classes=5, **options)
    with pytest.raises(ValueError, match="full K x K tag embedding"):
        method(torch.randn(4, 3), batch[3])
