"""The released encoder-decoder (models/seq2seq.py) and decoding (tasks/decode.py), on synthetic tasks."""

from __future__ import annotations

import math

import pytest
import torch

from labelemb.methods import build
from labelemb.models.seq2seq import Seq2Seq
from labelemb.tasks.decode import beam_search, greedy_decode

PAD, BOS, EOS = 0, 2, 3
VOCAB = 14  # ids 4..13 are the "words"


def copy_batch(generator: torch.Generator, size: int = 64, longest: int = 6):
    """Random word sequences, padded; the target is the source reversed, then </s>."""
    lengths = torch.randint(2, longest + 1, (size,), generator=generator)
    source = torch.zeros(size, longest, dtype=torch.long)
    target = torch.zeros(size, longest + 1, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        words = torch.randint(4, VOCAB, (n,), generator=generator)
        source[i, :n] = words
        target[i, :n] = words.flip(0)
        target[i, n] = EOS
    target_in = torch.cat([torch.full((size, 1), BOS), target[:, :-1]], dim=1)
    return source, target_in, target


def model_and_head(method: str, **options):
    torch.manual_seed(0)
    model = Seq2Seq(VOCAB, VOCAB, embedding=32, hidden=64, layers=1, dropout=0.0)
    head = build(method, in_features=64, num_classes=VOCAB, ignore_index=PAD, **options)
    return model, head


def train_reverse(method: str, steps: int = 400, **options):
    model, head = model_and_head(method, **options)
    optimiser = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        source, target_in, target = copy_batch(generator)
        features = model(source, target_in)
        loss = head(features.reshape(-1, 64), target.reshape(-1)).loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *head.parameters()], 5.0)
        optimiser.step()
    return model.eval(), head.eval()


def decoder_step(model: Seq2Seq, head):
    """``step`` and ``reorder`` for decode.py over a model and a method's o1 logits."""

    def step(tokens, state):
        encoded, hidden = state
        features, hidden, _ = model.decode(encoded, tokens[:, None], hidden)
        return torch.log_softmax(head.logits(features[:, 0]), -1), (encoded, hidden)

    def reorder(state, rows):
        encoded, hidden = state
        encoded = type(encoded)(
            encoded.states[rows], encoded.mask[rows], tuple(x[:, rows] for x in encoded.start)
        )
        return encoded, None if hidden is None else tuple(x[:, rows] for x in hidden)

    return step, reorder


def token_accuracy(model, head, generator) -> float:
    source, _, target = copy_batch(generator, size=200)
    step, _ = decoder_step(model, head)
    with torch.no_grad():
        output = greedy_decode(step, (model.encode(source), None), BOS, EOS, torch.full((200,), 8))
    right = total = 0
    for produced, row in zip(output, target.tolist()):
        gold = row[: row.index(EOS)]
        total += len(gold)
        right += sum(a == b for a, b in zip(produced, gold))
    return right / total


@pytest.mark.parametrize(
    ("method", "options"),
    [("onehot", {}), ("label_embedding", {"variant": "nlp", "soft_warmup": 0.3, "total_updates": 400})],
)
def test_a_tiny_model_learns_to_reverse_with_each_method(method, options):
    model, head = train_reverse(method, **options)
    assert token_accuracy(model, head, torch.Generator().manual_seed(7)) > 0.95


def test_an_example_scores_the_same_alone_and_in_a_padded_batch():
    model, _ = model_and_head("onehot")
    model.eval()
    source, target_in, _ = copy_batch(torch.Generator().manual_seed(3), size=8)
    together = model(source, target_in)
    for i in range(8):
        n = int((source[i] != PAD).sum())
        alone = model(source[i : i + 1, :n], target_in[i : i + 1])
        torch.testing.assert_close(alone[0], together[i], rtol=1e-5, atol=1e-6)
    # the release's unmasked attention does see the padding
    model.mask_source = False
    padded = next(i for i in range(8) if source[i, -1] == PAD)  # an example shorter than the batch
    n = int((source[padded] != PAD).sum())
    alone, in_batch = (
        model(source[padded : padded + 1, :n], target_in[padded : padded + 1]),
        model(source, target_in),
    )
    assert not torch.allclose(alone[0], in_batch[padded])


def test_beam_of_one_is_greedy_on_a_trained_model():
    model, head = train_reverse("onehot", steps=60)
    source, _, _ = copy_batch(torch.Generator().manual_seed(5), size=16)
    step, reorder = decoder_step(model, head)
    limit = torch.full((16,), 9)
    with torch.no_grad():
        greedy = greedy_decode(step, (model.encode(source), None), BOS, EOS, limit)
        beam = beam_search(step, (model.encode(source), None), reorder, BOS, EOS, limit, beam=1)
        wide = beam_search(step, (model.encode(source), None), reorder, BOS, EOS, limit, beam=4)
    assert beam == greedy
    assert len(wide) == 16


def fixed_step(table):
    """A decoder whose next-token probabilities depend on the prefix only: ``table[prefix]``."""

    def step(tokens, state):
        prefixes = [prefix + (token,) for prefix, token in zip(state, tokens.tolist())]
        rows = [table.get(prefix[1:], {EOS: 1.0}) for prefix in prefixes]
        log_probs = torch.full((len(rows), 6), float("-inf"))
        for i, row in enumerate(rows):
            for token, p in row.items():
                log_probs[i, token] = math.log(p)
        return log_probs, prefixes

    def reorder(state, rows):
        return [state[i] for i in rows.tolist()]

    return step, reorder


def test_beam_search_finds_a_better_sequence_than_greedy():
    # greedy takes 4 (0.6) then gets 0.3 at best; 5 (0.4) then 1.0 scores 0.4 > 0.6 x 0.5
    table = {
        (): {4: 0.6, 5: 0.4},
        (4,): {4: 0.5, 5: 0.5},
        (5,): {4: 1.0},
        (4, 4): {EOS: 1.0},
        (4, 5): {EOS: 1.0},
    }
    table[(5, 4)] = {EOS: 1.0}
    step, reorder = fixed_step(table)
    limit = torch.tensor([5])
    greedy = greedy_decode(step, [()], BOS, EOS, limit)
    best = beam_search(step, [()], reorder, BOS, EOS, limit, beam=2)
    assert greedy[0][0] == 4 and best == [[5, 4]]

    def score(sequence):
        prefix, total = (), 0.0
        for token in [*sequence, EOS]:
            total += math.log(table.get(prefix, {EOS: 1.0}).get(token, 1e-300))
            prefix += (token,)
        return total

    assert score(best[0]) > score(greedy[0])


def test_decoding_stops_at_each_examples_own_length_limit():
    table = {(): {4: 1.0}, (4,): {4: 1.0}, (4, 4): {4: 1.0}, (4, 4, 4): {4: 1.0}}
    step, reorder = fixed_step(table)
    limits = torch.tensor([2, 4])
    assert greedy_decode(step, [(), ()], BOS, EOS, limits) == [[4, 4], [4, 4, 4, 4]]
    assert beam_search(step, [(), ()], reorder, BOS, EOS, limits, beam=3) == [[4, 4], [4, 4, 4, 4]]
