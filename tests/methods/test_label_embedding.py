"""The Label Embedding Network's loss, term by term, against hand computations (DESIGN.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import labelemb
from labelemb.methods import LabelEmbedding, LabelEmbeddingFixed, LabelRangeError, build
from labelemb.methods.label_embedding import TERMS

M, D = 3, 2


def o1(head: LabelEmbedding, features: torch.Tensor) -> torch.Tensor:
    """What the predicting output layer o1 gives (rows [:m] of ``head.heads``)."""
    return torch.nn.functional.linear(features, *head.output_layer(1))


def o2(head: LabelEmbedding, features: torch.Tensor) -> torch.Tensor:
    """What the output layer o2 that teaches E gives (rows [m:] of ``head.heads``)."""
    return torch.nn.functional.linear(features, *head.output_layer(2))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def cross_entropy(p: np.ndarray, log_q: np.ndarray) -> float:
    return float(-(p * log_q).sum())


def make_head(**options) -> LabelEmbedding:
    """A head with hand-set weights: o1, o2 and E are known numbers."""
    head = LabelEmbedding(D, M, **options)
    with torch.no_grad():
        head.output_layer(1)[0].copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]))
        head.output_layer(1)[1].copy_(torch.tensor([0.1, 0.0, -0.1]))
        head.output_layer(2)[0].copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
        head.output_layer(2)[1].copy_(torch.tensor([0.0, 0.2, 0.0]))
        if head.compressed_dim is None:
            head.embedding.copy_(torch.tensor([[2.0, 0.5, 0.0], [0.3, 1.5, 0.2], [0.0, 0.4, 1.0]]))
    return head


FEATURES = [[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, -2.0]]


def hand_loss(
    features, targets, head: LabelEmbedding, variant="released", tau=2.0, alpha=0.9, beta=0.5, warm=True
):
    """The loss of DESIGN.md written out example by example, in NumPy."""
    w1, b1 = head.output_layer(1)[0].detach().numpy(), head.output_layer(1)[1].detach().numpy()
    w2, b2 = head.output_layer(2)[0].detach().numpy(), head.output_layer(2)[1].detach().numpy()
    table = head.embedding_matrix().numpy()
    rows = [(np.array(h), y) for h, y in zip(features, targets) if y != -100]
    ce1 = soft = ce2 = emb_sum = n_correct = hinge = two_sided = 0.0
    for h, y in rows:
        z1, z2, e = w1 @ h + b1, w2 @ h + b2, table[y]
        onehot = np.eye(M)[y]
        ce1 += cross_entropy(onehot, np.log(softmax(z1)))
        soft += cross_entropy(softmax(e), np.log(softmax(z1)))
        ce2 += cross_entropy(onehot, np.log(softmax(z2)))
        if np.argmax(z2) == y:
            emb_sum += cross_entropy(softmax(z2 / tau), np.log(softmax(e)))
            n_correct += 1
        hinge += max(0.0, softmax(z2)[y] - alpha)
        two_sided += abs(softmax(z2)[y] - alpha)
    n = len(rows)
    if variant == "released":
        return beta * ce1 / n + (1 - beta) * soft / n + ce2 / n + emb_sum / (n_correct + 1e-8) + hinge
    if variant == "paper":
        return ce1 / n + soft / n + ce2 / n + emb_sum / (n_correct + 1e-8) + hinge
    # The released seq2seq loss: every weight 1, every term over the n non-pad tokens.
    soft_weight = 1.0 if warm else 0.0
    return ce1 / n + soft_weight * soft / n + ce2 / n + emb_sum / n + two_sided / n


def run(head, targets, features=FEATURES):
    return head(torch.tensor(features), torch.tensor(targets))


@pytest.mark.parametrize(
    "targets, expected_correct",
    [
        ([0, 1, 1, 2], 4),  # o2 predicts 0, 1, 1, 2: all correct
        ([0, 1, 2, 1], 2),  # some correct
        ([1, 0, 0, 0], 0),  # none correct: the embedding term is 0, not NaN
    ],
)
def test_released_loss_matches_hand_computation(targets, expected_correct):
    head = make_head()
    z2 = o2(head, torch.tensor(FEATURES))
    assert int((z2.argmax(1) == torch.tensor(targets)).sum()) == expected_correct
    out = run(head, targets)
    assert out.loss.item() == pytest.approx(hand_loss(FEATURES, targets, head), rel=1e-5)
    if expected_correct == 0:
        assert out.terms["emb"].item() == 0.0


def test_hinge_is_summed_over_the_batch_not_averaged():
    head = make_head(alpha=0.1)  # low alpha: every example pays the hinge
    targets = [0, 1, 0, 2]
    out = run(head, targets)
    z2 = o2(head, torch.tensor(FEATURES)).detach()
    gold = torch.softmax(z2, 1)[torch.arange(4), torch.tensor(targets)]
    assert out.terms["penalty"].item() == pytest.approx(float((gold - 0.1).clamp(min=0).sum()), rel=1e-6)
    assert out.terms["penalty"].item() > 1.0  # a mean of probabilities could never exceed 1
    assert out.loss.item() == pytest.approx(hand_loss(FEATURES, targets, head, alpha=0.1), rel=1e-5)


def test_paper_variant_weights_both_o1_terms_one():
    head = make_head(variant="paper")
    targets = [0, 1, 2, 1]
    assert run(head, targets).loss.item() == pytest.approx(
        hand_loss(FEATURES, targets, head, "paper"), rel=1e-5
    )


@pytest.mark.parametrize("compressed_dim", [None, "auto"], ids=["full-E", "released-compressed"])
@pytest.mark.parametrize("targets", [[0, 1, 2, 1], [0, -100, 2, 1], [-100, 1, -100, 1]], ids=str)
def test_nlp_variant_is_the_released_formula_with_padding(targets, compressed_dim):
    head = make_head(variant="nlp", soft_warmup=2, compressed_dim=compressed_dim)
    for step in range(3):  # updates 0 and 1 are in warm-up, update 2 is not
        out = run(head, targets)
        expected = hand_loss(FEATURES, targets, head, "nlp", warm=step >= 2)
        assert out.loss.item() == pytest.approx(expected, rel=1e-5), step
    assert int(head.num_updates) == 3
    # Weights 1, 1 after the warm-up: the loss is the plain sum of its five terms.
    assert out.loss.item() == pytest.approx(sum(t.item() for t in out.terms.values()), rel=1e-6)


def test_nlp_warm_up_is_a_count_or_a_fraction_of_training():
    assert LabelEmbedding(D, M, variant="nlp").soft_warmup == 20_000  # as released
    assert LabelEmbedding(D, M, variant="nlp", soft_warmup=500).soft_warmup == 500
    assert LabelEmbedding(D, M, variant="nlp", soft_warmup=0.3, total_updates=1000).soft_warmup == 300
    with pytest.raises(ValueError, match="total_updates"):
        LabelEmbedding(D, M, variant="nlp", soft_warmup=0.3)
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="soft_warmup"):
            LabelEmbedding(D, M, variant="nlp", soft_warmup=bad)
    with pytest.raises(ValueError, match="leave beta out"):
        LabelEmbedding(D, M, variant="nlp", beta=0.5)


def test_the_trainer_gives_a_fractional_warm_up_its_number_of_updates(small_config, digits):
    from labelemb.training import build_network

    config = small_config("method.variant=nlp", "method.soft_warmup=0.25", "train.epochs=4")
    _, method = build_network(config, digits)
    batches = -(-len(digits.train) // config.train.batch_size)
    assert method.soft_warmup == round(0.25 * batches * 4)


def test_evaluation_mode_does_not_advance_the_warm_up():
    head = make_head(variant="nlp", soft_warmup=1).eval()
    run(head, [0, 1, 2, 1])
    assert int(head.num_updates) == 0


def test_options_change_the_loss_as_the_formula_says():
    targets = [0, 1, 2, 1]
    for options in ({"tau": 4.0}, {"beta": 0.2}, {"alpha": 0.5}):
        head = make_head(**options)
        expected = hand_loss(FEATURES, targets, head, **options)
        assert run(head, targets).loss.item() == pytest.approx(expected, rel=1e-5)


def test_ignore_index_rows_contribute_nothing():
    head = make_head()
    targets = [0, 1, 2, 1]
    base = run(head, targets)
    padded_features = torch.tensor([*FEATURES, [5.0, -4.0], [0.3, 0.3]], requires_grad=True)
    padded = head(padded_features, torch.tensor([*targets, -100, -100]))
    assert padded.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
    for name in base.terms:
        assert padded.terms[name].item() == pytest.approx(base.terms[name].item(), rel=1e-6, abs=1e-7)
    padded.loss.backward()
    assert torch.all(padded_features.grad[4:] == 0)
    assert padded_features.grad[:4].abs().sum() > 0
    custom = make_head(ignore_index=7)
    assert custom(
        torch.tensor(FEATURES[:2] + [[9.0, 9.0]]), torch.tensor([0, 1, 7])
    ).loss.item() == pytest.approx(hand_loss(FEATURES[:2], [0, 1], make_head()), rel=1e-5)


def test_all_rows_ignored_gives_a_finite_zero_loss():
    out = run(make_head(), [-100, -100, -100, -100])
    assert out.loss.item() == 0.0


def _grads(head, loss, features):
    head.zero_grad()
    if features.grad is not None:
        features.grad = None
    loss.backward()
    return {name: p.grad.clone() if p.grad is not None else None for name, p in head.named_parameters()}


def test_o2_loss_never_reaches_the_backbone():
    head = make_head()
    features = torch.tensor(FEATURES, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 1])
    run_out = head(features, targets)
    _grads(head, run_out.loss, features)
    backbone_grad = features.grad.clone()
    # The backbone may only see the two o1 terms.
    features2 = torch.tensor(FEATURES, requires_grad=True)
    log_p1 = torch.log_softmax(o1(head, features2), 1)
    soft = torch.softmax(head.embedding[targets], 1).detach()
    o1_only = 0.5 * torch.nn.functional.nll_loss(log_p1, targets) - 0.5 * (soft * log_p1).sum(1).mean()
    o1_only.backward()
    torch.testing.assert_close(backbone_grad, features2.grad)
    assert head.heads.weight.grad is not None and head.heads.weight.grad[M:].abs().sum() > 0  # o2 learns


def test_embedding_gets_gradient_only_from_its_own_term():
    head = make_head()
    features = torch.tensor(FEATURES)
    targets = torch.tensor([0, 1, 2, 1])
    grads = _grads(head, head(features, targets).loss, features.requires_grad_())
    # Hand-built embedding term alone.
    head.zero_grad()
    z2 = o2(head, features).detach()
    mask = (z2.argmax(1) == targets).float()
    emb = -(torch.softmax(z2 / 2.0, 1) * torch.log_softmax(head.embedding[targets], 1)).sum(1)
    ((emb * mask).sum() / (mask.sum() + 1e-8)).backward()
    torch.testing.assert_close(grads["embedding"], head.embedding.grad)


def test_soft_label_term_moves_o1_but_not_the_embedding():
    head = make_head()
    features = torch.tensor(FEATURES, requires_grad=True)
    targets = torch.tensor([1, 0, 0, 0])  # o2 is wrong everywhere: the embedding term is empty
    out = head(features, targets)
    assert out.terms["soft_o1"].item() > 0
    grads = _grads(head, out.loss, features)
    assert torch.all(grads["embedding"] == 0)
    # beta = 1 removes the soft term: o1's gradient must change.
    head_no_soft = make_head(beta=1.0)
    grads_no_soft = _grads(head_no_soft, head_no_soft(features, targets).loss, features)
    assert not torch.allclose(grads["heads.weight"][:M], grads_no_soft["heads.weight"][:M])


def test_prediction_uses_o1_only():
    head = make_head()
    features = torch.tensor(FEATURES)
    torch.testing.assert_close(head.logits(features), o1(head, features))
    torch.testing.assert_close(run(head, [0, 1, 2, 1]).logits, o1(head, features))


def test_embedding_starts_as_identity():
    head = LabelEmbedding(5, 4)
    torch.testing.assert_close(head.embedding.detach(), torch.eye(4))
    rep = head.label_representation()
    torch.testing.assert_close(rep.sum(1), torch.ones(4))
    assert torch.all(rep.argmax(1) == torch.arange(4))


def test_compressed_embedding_is_relu_of_low_rank_product():
    head = LabelEmbedding(D, M, compressed_dim=2)
    with torch.no_grad():
        head.codes.copy_(torch.tensor([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]))
        head.expand.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # B^T: (m, k)
        head.expand.bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
    a = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    c = np.array([0.0, 0.5, -1.0])
    expected = np.maximum(a @ b + c, 0.0)
    torch.testing.assert_close(
        head.embedding_rows(torch.tensor([0, 1, 2])), torch.tensor(expected, dtype=torch.float32)
    )
    targets = [0, 1, 2, 1]
    assert run(head, targets).loss.item() == pytest.approx(hand_loss(FEATURES, targets, head), rel=1e-5)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operation produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for item in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return result


def test_compressed_embedding_at_fifty_thousand_labels_never_builds_m_by_m():
    m, k, batch = 50_000, 100, 8
    watcher = _LargestTensor()
    with watcher:
        head = LabelEmbedding(16, m, compressed_dim=k)
        embedding_bytes = sum(
            p.numel() * p.element_size() for n, p in head.named_parameters() if not n.startswith("heads")
        )
        features = torch.randn(batch, 16, requires_grad=True)
        out = head(features, torch.randint(0, m, (batch,)))
        out.loss.backward()
        representation = head.label_representation()
    assert embedding_bytes == (2 * m * k + m) * 4  # A, B and c: about 40 MB
    assert 39e6 < embedding_bytes < 41e6
    assert math.isfinite(out.loss.item())
    assert head.codes.grad is not None and head.expand.weight.grad is not None
    assert representation.shape == (m, k)
    assert watcher.largest < m * m // 100  # the largest tensor is a parameter, never m x m


def test_label_outside_the_class_range_is_a_clear_error():
    head = make_head()
    for bad in (3, -1, 100):
        with pytest.raises(LabelRangeError, match=rf"\[{bad}\].*outside \[0, 3\).*num_classes=3"):
            run(head, [0, 1, bad, 1])
    with pytest.raises(ValueError, match=r"features of shape \(N, 2\)"):
        head(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class indices"):
        head(torch.zeros(4, 2), torch.zeros(4))


def test_fixed_embedding_loss_and_no_trainable_embedding(tmp_path):
    table = torch.tensor([[2.0, 0.5, 0.0], [0.3, 1.5, 0.2], [0.0, 0.4, 1.0]])
    head = LabelEmbeddingFixed(D, M, embedding=table, beta=0.3)
    names = {name for name, _ in head.named_parameters()}
    assert names == {"o1.weight", "o1.bias"}  # no o2, no trainable E
    assert not head.soft_label_table.requires_grad
    with torch.no_grad():
        head.o1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]))
        head.o1.bias.zero_()
    targets = [0, 1, 2, 1]
    expected = 0.0
    for h, y in zip(FEATURES, targets):
        log_q = np.log(softmax(head.o1.weight.detach().numpy() @ np.array(h)))
        expected += 0.3 * cross_entropy(np.eye(M)[y], log_q) + 0.7 * cross_entropy(
            softmax(table[y].numpy()), log_q
        )
    out = run(head, targets)
    assert out.loss.item() == pytest.approx(expected / 4, rel=1e-5)
    out.loss.backward()
    torch.testing.assert_close(head.label_representation(), torch.softmax(table, 1))
    # From a tensor file, and a clear error for the wrong shape or a missing file.
    torch.save(table, tmp_path / "e.pt")
    torch.testing.assert_close(
        LabelEmbeddingFixed(D, M, embedding=tmp_path / "e.pt").soft_label_table, torch.softmax(table, 1)
    )
    with pytest.raises(ValueError, match=r"shape \(3, 3\).*4 classes"):
        LabelEmbeddingFixed(D, 4, embedding=table)
    with pytest.raises(FileNotFoundError, match="no label embedding"):
        LabelEmbeddingFixed(D, M, embedding=tmp_path / "missing")


def test_onehot_is_plain_cross_entropy():
    head = build("onehot", in_features=D, num_classes=M)
    features, targets = torch.tensor(FEATURES), torch.tensor([0, 2, -100, 1])
    logits = head.output(features).detach().numpy()
    expected = np.mean([-np.log(softmax(logits[i])[y]) for i, y in enumerate([0, 2, -100, 1]) if y != -100])
    assert head(features, targets).loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(LabelRangeError):
        head(features, torch.tensor([0, 3, 1, 1]))


def test_registry_builds_by_name_and_rejects_unknown_names_and_options():
    head = build("label_embedding", in_features=4, num_classes=5, tau=3.0)
    assert isinstance(head, LabelEmbedding) and head.tau == 3.0
    with pytest.raises(ValueError, match="unknown method 'nope'.*label_embedding"):
        build("nope", in_features=4, num_classes=5)
    with pytest.raises(ValueError, match="no option.*tua.*tau="):
        build("label_embedding", in_features=4, num_classes=5, tua=3.0)
    with pytest.raises(ValueError, match="needs option.*embedding"):
        build("label_embedding_fixed", in_features=4, num_classes=5)
    with pytest.raises(ValueError, match="variant"):
        LabelEmbedding(4, 5, variant="nope")


def test_drop_in_three_lines_in_a_user_loop():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU())
    head = labelemb.LabelEmbedding(16, 4)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    inputs = torch.randn(64, 6)
    target = inputs[:, :4].argmax(1)
    first = None
    for _ in range(100):
        out = head(backbone(inputs), target)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        first = out.loss.item() if first is None else first
    assert out.loss.item() < first
    assert (head.logits(backbone(inputs)).argmax(1) == target).float().mean() > 0.9
    # The embedding moved away from the identity: it learned something.
    assert not torch.allclose(head.embedding.detach(), torch.eye(4))


def reference_loss(head: LabelEmbedding, features, target, w_gold, w_soft):
    """DESIGN.md's loss written with autograd and explicit stop-gradients, row by row."""
    valid = target != -100
    h, y = features[valid], target[valid]
    n = len(y)
    z1, z2 = o1(head, h), o2(head, h.detach())
    e = head.embedding_rows(y)
    log_p1, log_p2 = torch.log_softmax(z1, 1), torch.log_softmax(z2, 1)
    rows = torch.arange(n)
    ce1 = -log_p1[rows, y].mean()
    soft = -(torch.softmax(e, 1).detach() * log_p1).sum(1).mean()
    ce2 = -log_p2[rows, y].mean()
    mask = (z2.argmax(1) == y).to(z2.dtype)
    emb_rows = -(torch.softmax(z2.detach() / head.tau, 1) * torch.log_softmax(e, 1)).sum(1)
    gold = log_p2[rows, y].exp()
    if head.variant == "nlp":
        emb = (emb_rows * mask).sum() / n
        penalty = (gold - head.alpha).abs().mean()
    else:
        emb = (emb_rows * mask).sum() / (mask.sum() + 1e-8)
        penalty = torch.relu(gold - head.alpha).sum()
    return w_gold * ce1 + w_soft * soft + ce2 + emb + penalty


@pytest.mark.parametrize("variant", ["released", "paper", "nlp"])
@pytest.mark.parametrize("compressed_dim", [None, 3])
def test_hand_derived_gradients_match_autograd(variant, compressed_dim):
    """The closed-form backward against autograd through the plain formula, in double precision."""
    torch.manual_seed(0)
    head = LabelEmbedding(4, 5, variant=variant, compressed_dim=compressed_dim, alpha=0.3, soft_warmup=0)
    head = head.double()
    with torch.no_grad():
        head.output_layer(2)[0].mul_(5.0)  # confident o2: some rows pass the argmax mask and the hinge
    features = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 1, 2, 3, 4, -100, 2, 1, 0])
    ours = head(features, target).loss
    ours_grads = torch.autograd.grad(ours, [features, *head.parameters()])
    expected = reference_loss(head, features, target, *head.loss_weights())
    expected_grads = torch.autograd.grad(expected, [features, *head.parameters()])
    torch.testing.assert_close(ours, expected)
    for name, a, b in zip(["features", *(n for n, _ in head.named_parameters())], ours_grads, expected_grads):
        torch.testing.assert_close(a, b, msg=lambda m, name=name: f"gradient of {name}: {m}")


def test_the_returned_logits_are_differentiable_like_o1s_output():
    """A user may add their own loss on out.logits: it must reach o1 and the backbone, as o1(h) would."""
    torch.manual_seed(0)
    head = LabelEmbedding(4, 3)
    features = torch.randn(5, 4, requires_grad=True)
    target = torch.tensor([0, 1, 2, 1, 0])
    out = head(features, target)
    extra = (out.logits**2).sum()
    ours = torch.autograd.grad(out.loss + extra, [features, head.heads.weight, head.heads.bias])
    reference = reference_loss(head, features, target, *head.loss_weights()) + (o1(head, features) ** 2).sum()
    expected = torch.autograd.grad(reference, [features, head.heads.weight, head.heads.bias])
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b)
    logits_only = torch.autograd.grad(head(features, target).logits.sum(), features)[0]
    torch.testing.assert_close(logits_only, head.output_layer(1)[0].sum(0).expand(5, 4))


#: The heads whose backward is written by hand (an autograd.Function), and its node's name.
HAND_WRITTEN_BACKWARDS = [
    ("label_embedding", {}, "LabelEmbeddingHeadBackward"),
    ("label_embedding", {"chunk_size": 2}, "ChunkedLabelEmbeddingHeadBackward"),
    ("onehot", {"chunk_size": 2}, "_ChunkedLinearLossBackward"),
]


@pytest.mark.parametrize(("name", "options", "node"), HAND_WRITTEN_BACKWARDS)
def test_a_hand_written_backward_makes_no_zeros_for_outputs_nobody_differentiated(name, options, node):
    """In training only the loss is differentiated: the backward gets None for the logits and the
    terms, not tensors of zeros made each step (kernels on a GPU)."""
    head = build(name, in_features=4, num_classes=3, **options)
    out = head(torch.randn(5, 4, requires_grad=True), torch.tensor([0, 1, 2, 1, 0]))
    with torch.profiler.profile() as profile:
        out.loss.backward()

    def inside(event) -> bool:
        parent = event.cpu_parent
        while parent is not None and parent.name != node:
            parent = parent.cpu_parent
        return parent is not None

    names = [e.name for e in profile.events()]
    made = [e.name for e in profile.events() if e.name in ("aten::zeros", "aten::zero_") and inside(e)]
    assert node in names and made == [] and all(p.grad is not None for p in head.parameters())


def test_o1_and_o2_start_as_two_separately_initialised_layers_would():
    """The merged ``heads`` draws the same numbers as o1 then o2 built apart (older runs' layout)."""
    torch.manual_seed(0)
    head = LabelEmbedding(5, 3, init_std=0.1)
    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 3) for _ in range(2)]
    for layer in layers:
        labelemb.methods.base.init_linear(layer, 0.1)
    for which, layer in zip((1, 2), layers):
        weight, bias = head.output_layer(which)
        assert torch.equal(weight, layer.weight) and torch.equal(bias, layer.bias)
    with pytest.raises(ValueError, match="which must be 1"):
        head.output_layer(3)


def test_a_state_dict_with_separate_o1_and_o2_loads_into_the_merged_heads():
    head = make_head()
    old_layout = {key: value for key, value in head.state_dict().items() if not key.startswith("heads")}
    for which in (1, 2):
        weight, bias = head.output_layer(which)
        old_layout[f"o{which}.weight"], old_layout[f"o{which}.bias"] = weight.clone(), bias.clone()
    loaded = LabelEmbedding(D, M)
    loaded.load_state_dict(old_layout)
    for key, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("variant", ["released", "nlp"])
def test_torch_compile_of_the_head_gives_the_eager_loss_terms_and_gradients(variant):
    """``torch.compile(head)`` traces the hand-written autograd Function; the label check stays eager.

    ``aot_eager`` runs the traced graph with eager kernels, so this checks our side (tracing, the
    graph split at the label check, the closed-form backward) without needing a C++ compiler.
    """
    torch.manual_seed(0)
    head = LabelEmbedding(8, 4, alpha=0.3, variant=variant, soft_warmup=0)
    with torch.no_grad():
        head.heads.weight.mul_(5.0)  # confident o2: the mask and the hinge are active
    features = torch.randn(16, 8, requires_grad=True)
    target = torch.randint(0, 4, (16,))
    eager = head(features, target)
    expected = torch.autograd.grad(eager.loss, [features, *head.parameters()])
    torch._dynamo.reset()
    compiled = torch.compile(head, backend="aot_eager")(features, target)
    got = torch.autograd.grad(compiled.loss, [features, *head.parameters()])
    torch.testing.assert_close(compiled.loss, eager.loss)
    torch.testing.assert_close(compiled.logits, eager.logits)
    for name in TERMS:
        torch.testing.assert_close(compiled.terms[name], eager.terms[name])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    with pytest.raises(LabelRangeError):  # the label check still runs under compile
        torch.compile(head, backend="aot_eager")(features, torch.full((16,), 4))


# ---------------------------------------------------------------------- gradient accumulation


@pytest.mark.parametrize(
    "options",
    [{}, {"variant": "paper"}, {"compressed_dim": 3}, {"alpha": 0.05}, {"variant": "nlp"}],
    ids=["released", "paper", "compressed", "penalty", "nlp"],
)
def test_micro_batches_add_up_to_the_whole_batchs_gradients(options):
    """micro_batch_loss over 4 micro-batches (ignored rows unevenly spread) gives the gradients of
    one batch, E's masked mean and the summed penalty included; a second step after a zero_grad
    that keeps zero tensors starts its count afresh."""
    torch.manual_seed(0)
    head = build("label_embedding", in_features=6, num_classes=5, ignore_index=-100, **options).double()
    head.heads.weight.data.normal_(0, 1.0)  # o2 sure enough of some rows to get them right
    target = torch.randint(0, 5, (2, 32))
    target[:, :5] = -100  # the first micro-batch counts 3 rows, the others 8
    features = torch.randn(2, 32, 6, dtype=torch.float64)
    items = (target != -100).sum(-1)

    def gradients(step: int, parts: int) -> dict[str, torch.Tensor]:
        rows = features[step].clone().requires_grad_()
        for chunk, labels in zip(rows.chunk(parts), target[step].chunk(parts)):
            out = head.micro_batch_loss(chunk, labels, items[step])
            out.loss.backward()
        found = {n: p.grad.clone() for n, p in head.named_parameters()}
        found["features"] = rows.grad
        return found

    for step in range(2):
        head.zero_grad(set_to_none=step == 0)  # step 1: a zero_grad that leaves zeros
        whole = gradients(step, 1)
        if step == 0:  # one micro-batch is the method's own step
            head.zero_grad()
            own = head(features[0].clone().requires_grad_(), target[0])
            torch.testing.assert_close(head.micro_batch_loss(features[0], target[0], items[0]).loss, own.loss)
        head.zero_grad(set_to_none=step == 0)
        parts = gradients(step, 4)
        for name, grad in whole.items():
            assert grad.abs().max() > 0, name
            message = lambda m, n=name: f"{n}: {m}"  # noqa: E731
            torch.testing.assert_close(parts[name], grad, rtol=0, atol=1e-12, msg=message)


def test_nlp_warm_up_counts_optimiser_steps_under_accumulation():
    """Variant nlp's soft term starts after ``soft_warmup`` optimiser steps however many micro-batches
    make a step: three steps of 4 micro-batches give each step the gradients of the whole batch's own
    step (the warm-up counted once a step: off in steps 0 and 1, on in step 2), where a count of
    micro-batches would switch the soft term on in step 0."""
    torch.manual_seed(0)
    whole = build("label_embedding", in_features=6, num_classes=5, variant="nlp", soft_warmup=2).double()
    parts = build("label_embedding", in_features=6, num_classes=5, variant="nlp", soft_warmup=2).double()
    parts.load_state_dict(whole.state_dict())
    target = torch.randint(0, 5, (3, 32))
    target[:, :5] = -100  # the micro-batches count different numbers of rows
    features = torch.randn(3, 32, 6, dtype=torch.float64)
    items = (target != -100).sum(-1)
    soft_weights = []
    for step in range(3):
        soft_weights.append(whole.loss_weights()[1])
        whole.zero_grad()
        whole(features[step], target[step]).loss.backward()
        parts.zero_grad(set_to_none=step != 1)  # step 1: a zero_grad that leaves zeros
        for chunk, labels in zip(features[step].chunk(4), target[step].chunk(4)):
            parts.micro_batch_loss(chunk, labels, items[step]).loss.backward()
        for (name, a), b in zip(parts.named_parameters(), whole.parameters()):
            message = lambda m, n=name, s=step: f"step {s}, {n}: {m}"  # noqa: E731
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-12, msg=message)
        assert int(parts.num_updates) == int(whole.num_updates) == step + 1
    assert soft_weights == [0.0, 0.0, 1.0]  # the reference: the soft term from the third step on
