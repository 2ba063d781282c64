"""The chunked heads (methods/chunked.py) against the same methods computed at once.

A head that works through its rows in chunks forms every gradient by hand in forward; these tests
pin it to the unchunked head (itself pinned to hand computations elsewhere): loss, every logged
term and every gradient, with ignored rows, for each method and variant.
"""

from __future__ import annotations

import pytest
import torch

from labelemb.methods import LabelEmbedding, build
from labelemb.methods.chunked import AUTO_CHUNK_ENTRIES, rows_per_chunk
from labelemb.methods.label_embedding import method as label_embedding_module
from labelemb.methods.label_embedding.chunked import EmbeddingTable

D, M, N = 8, 12, 41
IGNORED = [3, 10, 11, 30]

CASES = [
    ("onehot", {}),
    ("label_smoothing", {"epsilon": 0.2}),
    ("confidence_penalty", {"beta": 0.3}),
    *(
        ("label_embedding", {"variant": variant, "compressed_dim": k, "alpha": 0.3, **warm})
        for variant, warm in [("released", {}), ("paper", {}), ("nlp", {"soft_warmup": 0})]
        for k in (None, 5)
    ),
    ("label_embedding", {"variant": "released", "beta": 0.8, "alpha": 0.3}),
    ("label_embedding", {"variant": "nlp", "alpha": 0.3}),  # in its warm-up: no soft term
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in CASES]


def pair(name: str, options: dict, chunk_size: int = 7):
    """The same method twice, with the same weights: chunked, and computed at once."""
    torch.manual_seed(0)
    whole = build(name, in_features=D, num_classes=M, chunk_size=10**6, **options)
    with torch.no_grad():
        for parameter in whole.parameters():
            if parameter.dim() == 2 and parameter.shape[0] >= M:
                parameter.mul_(4.0)  # confident outputs: masks and hinges take part
    chunked = build(name, in_features=D, num_classes=M, chunk_size=chunk_size, **options)
    chunked.load_state_dict(whole.state_dict())
    return chunked, whole


def batch(seed: int = 1, labels: int = M) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(N, D, generator=generator)
    # few distinct labels, unevenly: chunks share labels and hold several
    target = torch.randint(0, labels, (N,), generator=generator) ** 2 % labels
    target[IGNORED] = -100
    return features, target


def step(method, features, target):
    features = features.clone().requires_grad_()
    out = method(features, target)
    grads = torch.autograd.grad(out.loss, [features, *method.parameters()])
    return out, dict(zip(["features", *(name for name, _ in method.named_parameters())], grads))


def assert_same_step(a, b, rtol=1e-5, atol=1e-6):
    (out_a, grads_a), (out_b, grads_b) = a, b
    # under autocast the unchunked label_embedding returns a bf16 loss; the chunked heads float32
    torch.testing.assert_close(out_a.loss, out_b.loss, rtol=rtol, atol=atol, check_dtype=False)
    assert out_a.terms.keys() == out_b.terms.keys()
    for name in out_a.terms:
        torch.testing.assert_close(
            out_a.terms[name], out_b.terms[name], rtol=rtol, atol=atol, check_dtype=False
        )
    for name in grads_a:
        torch.testing.assert_close(
            grads_a[name], grads_b[name], rtol=rtol, atol=atol, msg=f"gradient of {name}"
        )


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_chunked_equals_whole_loss_terms_and_every_gradient(name, options):
    chunked, whole = pair(name, options)
    features, target = batch()
    ours, reference = step(chunked, features, target), step(whole, features, target)
    assert ours[0].logits is None and reference[0].logits.shape == (N, M)
    assert_same_step(ours, reference)
    assert ours[1]["features"][IGNORED].abs().sum() == 0  # padding gets no gradient


@pytest.mark.parametrize(("name", "options"), CASES[:3] + CASES[3:9:5], ids=IDS[:3] + IDS[3:9:5])
def test_chunked_equals_whole_in_bf16_autocast(name, options):
    chunked, whole = pair(name, options)
    features, target = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, reference = step(chunked, features, target), step(whole, features, target)
    assert ours[1]["features"].dtype == torch.float32
    assert_same_step(ours, reference, rtol=2e-2, atol=2e-2)


def test_chunks_of_any_size_give_the_same_step():
    options = {"variant": "nlp", "compressed_dim": 5, "soft_warmup": 0, "alpha": 0.3}
    features, target = batch()
    reference = step(pair("label_embedding", options)[1], features, target)
    for chunk_size in (1, 2, 16, N - 1):
        assert_same_step(step(pair("label_embedding", options, chunk_size)[0], features, target), reference)


def test_a_scaled_loss_scales_every_gradient():
    chunked, _ = pair("label_embedding", {"compressed_dim": 5, "alpha": 0.3})
    features, target = batch()
    out, grads = step(chunked, features, target)
    doubled = torch.autograd.grad(
        2.5 * chunked(features.clone().requires_grad_(), target).loss, chunked.heads.weight
    )
    torch.testing.assert_close(doubled[0], 2.5 * grads["heads.weight"])


def test_e_is_formed_once_per_distinct_label_of_each_chunk(monkeypatch):
    formed = []
    rows = EmbeddingTable.rows

    def recording(self, labels):
        formed.append(labels.clone())
        return rows(self, labels)

    monkeypatch.setattr(EmbeddingTable, "rows", recording)
    chunked, _ = pair("label_embedding", {"compressed_dim": 5}, chunk_size=8)
    features, target = batch()
    step(chunked, features, target)
    counted = target[target != -100]
    chunks = -(-len(counted) // 8)
    assert len(formed) == chunks
    for labels in formed:
        assert len(labels.unique()) == len(labels)  # no label twice in a chunk
    # rows grouped by label: a label spans chunks only at their boundaries
    assert sum(len(labels) for labels in formed) <= len(counted.unique()) + chunks - 1


def test_the_nlp_warm_up_counts_chunked_updates():
    chunked, _ = pair("label_embedding", {"variant": "nlp", "soft_warmup": 1})
    features, target = batch()
    first, _ = step(chunked, features, target)
    second, _ = step(chunked, features, target)
    assert int(chunked.num_updates) == 2
    # same weights, so the losses differ by exactly the soft term, which joins at update 1
    torch.testing.assert_close(second.loss - first.loss, second.terms["soft_o1"], rtol=1e-5, atol=1e-6)
    assert second.terms["soft_o1"] > 0


@pytest.mark.parametrize(("name", "options"), [CASES[0], CASES[8]], ids=[IDS[0], IDS[8]])
def test_rows_with_non_finite_features_or_logits_are_left_out_and_the_loss_says_so(name, options):
    chunked, whole = pair(name, options)
    features, target = batch()
    features[5] = float("nan")  # non-finite features
    features[20] = 1e38  # finite features whose logits overflow
    out, grads = step(chunked, features, target)
    assert torch.isnan(out.loss)
    assert torch.isnan(grads["features"][[5, 20]]).all()
    good = [i for i in range(N) if i not in (5, 20)]
    assert torch.isfinite(grads["features"][good]).all()
    for parameter in grads:
        if parameter != "features":
            assert torch.isfinite(grads[parameter]).all(), parameter
    # the rows that count give what the head computed at once gives on them alone
    target = target.clone()
    target[[5, 20]] = -100
    clean = features.clone()
    clean[[5, 20]] = 0.0
    reference = step(whole, clean, target)
    for name_ in out.terms:
        torch.testing.assert_close(out.terms[name_], reference[0].terms[name_], rtol=1e-5, atol=1e-6)
    for parameter in grads:
        if parameter != "features":
            torch.testing.assert_close(grads[parameter], reference[1][parameter], rtol=1e-5, atol=1e-6)


def test_a_batch_of_padding_only_or_no_rows():
    chunked, _ = pair("label_embedding", {"variant": "nlp", "soft_warmup": 0}, chunk_size=2)
    features, _ = batch()
    out, grads = step(chunked, features, torch.full((N,), -100))
    assert out.loss.item() == 0.0 and all(g.abs().sum() == 0 for g in grads.values())
    out, _ = step(chunked, features[:0], torch.zeros(0, dtype=torch.long))
    assert out.loss.item() == 0.0 and out.logits.shape == (0, M)


def test_automatic_chunk_size():
    assert rows_per_chunk(None, 100, 10) is None  # a classification batch: computed at once
    # at most 83 rows of 100,000 entries: 50 chunks, the 4,096 rows shared out as 82 or fewer each
    assert AUTO_CHUNK_ENTRIES // 100_000 == 83 and rows_per_chunk(None, 4096, 100_000) == 82
    assert rows_per_chunk(None, 2048, 16_000) == 256  # an eighth of the rows
    assert rows_per_chunk(None, 4096, 16_000) == 512  # an eighth, not the most the entries allow (524)
    # a 1,000-row batch: 4 chunks of 250, not 8 of 125 (an eighth of its rows); 600 rows: 3 of 200
    assert rows_per_chunk(None, 1000, 16_000) == 250 and rows_per_chunk(None, 600, 16_000) == 200
    assert rows_per_chunk(64, 64, 100_000) is None and rows_per_chunk(64, 65, 10) == 64
    with pytest.raises(ValueError, match="chunk_size"):
        LabelEmbedding(D, M, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        build("onehot", in_features=D, num_classes=M, chunk_size=-3)


def test_a_vocabulary_wide_batch_that_fits_takes_the_chunked_head_in_one_chunk(monkeypatch):
    calls = []
    chunked_loss = label_embedding_module.chunked_label_embedding_loss

    def recording(features, rows, chunk_rows, *rest):
        calls.append((features.shape[0], chunk_rows))
        return chunked_loss(features, rows, chunk_rows, *rest)

    monkeypatch.setattr(label_embedding_module, "chunked_label_embedding_loss", recording)
    m, n = 1024, 300  # 300 x 2,048 logits: above ONE_CHUNK_ENTRIES, far below a chunk's limit
    assert label_embedding_module.ONE_CHUNK_ENTRIES <= n * 2 * m <= AUTO_CHUNK_ENTRIES
    torch.manual_seed(0)
    auto = LabelEmbedding(D, m, variant="nlp", soft_warmup=0)
    whole = LabelEmbedding(D, m, variant="nlp", soft_warmup=0, chunk_size=10**6)
    whole.load_state_dict(auto.state_dict())
    features = torch.randn(n, D)
    target = torch.randint(0, 40, (n,))
    target[::7] = -100
    one_chunk, at_once = step(auto, features, target), step(whole, features, target)
    assert calls == [(n, n)] and one_chunk[0].logits is None
    assert_same_step(one_chunk, at_once)
    # a classification batch stays below: computed at once, with its logits
    out, _ = step(auto, features[:50], target[:50] % M)
    assert len(calls) == 1 and out.logits.shape == (50, m)


def test_the_chunk_buffers_are_kept_from_step_to_step_and_never_saved():
    kept, _ = pair("label_embedding", {"variant": "nlp", "soft_warmup": 0}, chunk_size=8)
    assert kept.kept_buffer_bytes == 0
    features, target = batch()
    step(kept, features, target)
    # float32 rows of 2m (z, then log p and dL/dz) twice and of m (teacher, q, z2 / tau) thrice
    assert kept.kept_buffer_bytes == 4 * 8 * (2 * 2 * kept.num_classes + 3 * kept.num_classes)
    buffers = kept._chunk_workspace.wide.data_ptr(), kept._chunk_workspace.narrow.data_ptr()
    step(kept, features[:20], target[:20])  # a smaller batch: the same buffers
    assert (kept._chunk_workspace.wide.data_ptr(), kept._chunk_workspace.narrow.data_ptr()) == buffers
    assert not any("workspace" in key for key in kept.state_dict())
    # what a larger step left in them changes nothing: the same as a method with fresh buffers
    fresh, _ = pair("label_embedding", {"variant": "nlp", "soft_warmup": 0}, chunk_size=8)
    features, target = batch(seed=2)
    assert_same_step(step(kept, features[:20], target[:20]), step(fresh, features[:20], target[:20]))
    kept.chunk_size = 16  # larger chunks: the buffers grow
    step(kept, features, target)
    assert kept._chunk_workspace.wide.shape[1] == 16
    assert kept.kept_buffer_bytes == 4 * 16 * 7 * kept.num_classes  # the old buffers are gone


def test_nlp_compressed_embedding_follows_the_release():
    torch.manual_seed(0)
    head = LabelEmbedding(16, 40, variant="nlp")
    assert head.compressed_dim == 16 and head.codes.shape == (40, 16)  # k = the feature size
    assert head.codes.std().item() == pytest.approx(1.0, abs=0.1)  # A ~ N(0, 1)
    bound = 16**-0.5  # a default nn.Linear(k, m): uniform within 1 / sqrt(k), bias too
    assert head.expand.weight.abs().max() <= bound and head.expand.weight.abs().max() > 0.8 * bound
    assert head.expand.bias.abs().max() <= bound and head.expand.bias.abs().max() > 0
    assert LabelEmbedding(16, 40, variant="nlp", compressed_dim=None).compressed_dim is None  # the full E
    assert LabelEmbedding(16, 40).compressed_dim is None  # released: the full E
    assert LabelEmbedding(16, 40, variant="nlp", compressed_dim=8).compressed_dim == 8
