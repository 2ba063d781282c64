"""Greedy and batched beam-search decoding over any step function (Sun et al. 2017, Section 3.3).

A decoder is seen through ``step(tokens, state) -> (log_probs, state)``: the last token of each
hypothesis (N,) in, the next token's log-probabilities (N, V) out, and ``reorder(state, rows)``,
which selects rows of a state (beam search keeps B x beam hypotheses and follows their parents).
Each example stops at ``</s>`` or at its own maximum length (``a x source length + b``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from ..options import Options


class DecodeOptions(Options):
    """How the sequence task decodes at each dev and test check (the config's ``decode:``): beam
    size (1 = greedy), length limit ``length_ratio x source length + max_length``, length
    normalisation of beam scores, ``<unk>`` replaced by the most-attended source word."""

    section: ClassVar[str] = "decode"
    #: How many sentences decode at once changes the time, never the output.
    not_results: ClassVar[tuple[str, ...]] = ("batch_size",)

    #: Beam size; 1 is greedy decoding.
    beam: int = Field(1, ge=1)
    #: Longest output: length_ratio x source length + max_length tokens.
    max_length: int = Field(50, ge=1)
    length_ratio: float = Field(0.0, ge=0)
    #: Rank finished beam hypotheses by log-probability per token instead of in total.
    length_normalise: bool = False
    #: Replace each output <unk> by the source word the decoder attended to most (the release's -unk).
    replace_unk: bool = False
    #: Sentences decoded at once.
    batch_size: int = Field(100, ge=1)
    #: Dev and test sources longer than this are cut to it (the log says how many): one very long
    #: line would otherwise make every check decode for length_ratio x its length steps over an
    #: attention as wide. null: no cap.
    max_source_tokens: int | None = Field(400, ge=1)

    def recorded(self) -> dict[str, Any]:
        """What a run's summary records of how its output was decoded."""
        return self.model_dump(exclude={"batch_size", "max_source_tokens"})


Step = Callable[[Tensor, Any], tuple[Tensor, Any]]
Reorder = Callable[[Any, Tensor], Any]


def greedy_decode(step: Step, state: Any, bos: int, eos: int, max_length: Tensor) -> list[list[int]]:
    """The most probable next token at each step, per example, until ``</s>`` or ``max_length`` (B,)."""
    batch = max_length.shape[0]
    tokens = torch.full((batch,), bos, dtype=torch.long, device=max_length.device)
    done = max_length <= 0
    produced = []
    for position in range(int(max_length.max()) if batch else 0):
        log_probs, state = step(tokens, state)
        tokens = log_probs.argmax(-1)
        produced.append(torch.where(done, eos, tokens))
        done = done | (tokens == eos) | (position + 1 >= max_length)
        if bool(done.all()):
            break
    if not produced:
        return [[] for _ in range(batch)]
    return [_until_eos(row, eos) for row in torch.stack(produced, 1).tolist()]


def beam_search(
    step: Step,
    state: Any,
    reorder: Reorder,
    bos: int,
    eos: int,
    max_length: Tensor,
    beam: int,
    length_normalise: bool = False,
) -> list[list[int]]:
    """The best-scoring hypothesis per example among ``beam`` kept at each step.

    Scores are sums of log-probabilities (divided by the length, ``</s>`` counted, with
    ``length_normalise``). At each step the ``2 x beam`` best extensions are ranked; those that
    end in ``</s>`` within the first ``beam`` ranks are finished, the best ``beam`` others go on.
    An example stops once it has ``beam`` finished hypotheses or reaches ``max_length``, where its
    live hypotheses count as finished. ``beam=1`` is greedy decoding.
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    batch, device = max_length.shape[0], max_length.device
    rows = torch.arange(batch, device=device).repeat_interleave(beam)
    state = reorder(state, rows)
    tokens = torch.full((batch * beam,), bos, dtype=torch.long, device=device)
    scores = torch.full((batch, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live hypothesis at the start
    history = torch.zeros((batch * beam, 0), dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [bool(limit <= 0) for limit in max_length.tolist()]
    limits = max_length.tolist()
    for position in range(int(max_length.max()) if batch else 0):
        log_probs, state = step(tokens, state)
        vocabulary = log_probs.shape[-1]
        total = (scores.view(-1, 1) + log_probs.float()).view(batch, beam * vocabulary)
        candidates, flat = total.topk(min(2 * beam, beam * vocabulary), dim=1)
        parents, words = flat // vocabulary, flat % vocabulary
        next_scores = torch.full((batch, beam), float("-inf"), device=device)
        next_parents = torch.zeros((batch, beam), dtype=torch.long, device=device)
        next_words = torch.full((batch, beam), eos, dtype=torch.long, device=device)
        for b in range(batch):
            if done[b]:
                continue
            kept = 0
            for rank, (score, parent, word) in enumerate(
                zip(candidates[b].tolist(), parents[b].tolist(), words[b].tolist())
            ):
                if score == float("-inf"):
                    break
                sequence = history[b * beam + parent].tolist()
                if word == eos:
                    if rank < beam:
                        finished[b].append((_ranked(score, len(sequence) + 1, length_normalise), sequence))
                    continue
                if kept < beam:
                    next_scores[b, kept], next_parents[b, kept], next_words[b, kept] = score, parent, word
                    kept += 1
            at_limit = position + 1 >= limits[b]
            if at_limit:  # live hypotheses end here
                for k in range(kept):
                    sequence = history[b * beam + int(next_parents[b, k])].tolist() + [int(next_words[b, k])]
                    finished[b].append(
                        (_ranked(float(next_scores[b, k]), len(sequence), length_normalise), sequence)
                    )
            done[b] = at_limit or len(finished[b]) >= beam or kept == 0
        if all(done):
            break
        parent_rows = (torch.arange(batch, device=device)[:, None] * beam + next_parents).view(-1)
        history = torch.cat([history[parent_rows], next_words.view(-1, 1)], dim=1)
        state = reorder(state, parent_rows)
        tokens, scores = next_words.view(-1), next_scores
    return [max(hypotheses, key=lambda pair: pair[0])[1] if hypotheses else [] for hypotheses in finished]


def _ranked(score: float, length: int, length_normalise: bool) -> float:
    return score / max(length, 1) if length_normalise else score


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens
