"""The released encoder-decoder of the paper's text experiments (Sun et al. 2017, Section 3.3).

An LSTM encoder; a stack of LSTM layers as decoder, started from the encoder's final state, with
no input feeding; Luong "general" attention (``score = c . W_in h``); output
``dropout(tanh(W_out [c; h]))``. That output is the feature ``h`` the method's heads read, so any
method of the registry is the output layer. Without input
feeding the decoder over a whole target sequence is one ``nn.LSTM`` call (teacher forcing),
exactly what a step-by-step stack of cells computes; decoding runs it one step at a time.

Token id 0 is padding on both sides (see :mod:`labelemb.data.text.corpus`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .registry import register

PAD_ID = 0


@dataclass
class Encoded:
    """What decoding needs from the source: its states, its padding mask and the decoder's start state."""

    states: Tensor  # (B, S, H)
    mask: Tensor  # (B, S) bool, True at real tokens
    start: tuple[Tensor, Tensor]  # (layers, B, H) each: the decoder's initial (h, c)


@register("seq2seq", inputs="token_pairs")
class Seq2Seq(nn.Module):
    """LSTM encoder-decoder with Luong general attention; ``forward`` gives decoder features (B, T, H).

    Options: ``layers``, ``embedding`` and ``hidden`` size, ``dropout`` (between layers and on
    the output), ``bidirectional`` encoder (each direction ``hidden / 2``, concatenated), and
    ``mask_source`` (attention ignores source padding; the release did not mask, ``False``
    reproduces it).
    """

    def __init__(
        self,
        source_vocabulary: int,
        target_vocabulary: int,
        *,
        embedding: int = 512,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.2,
        bidirectional: bool = False,
        mask_source: bool = True,
    ) -> None:
        super().__init__()
        if bidirectional and hidden % 2:
            raise ValueError(f"a bidirectional encoder splits hidden={hidden} in two halves: make it even")
        self.hidden = hidden
        self.layers = layers
        self.bidirectional = bidirectional
        self.mask_source = mask_source
        between = dropout if layers > 1 else 0.0
        self.source_embedding = nn.Embedding(source_vocabulary, embedding, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(target_vocabulary, embedding, padding_idx=PAD_ID)
        encoder_hidden = hidden // 2 if bidirectional else hidden
        self.encoder = nn.LSTM(
            embedding, encoder_hidden, layers, batch_first=True, dropout=between, bidirectional=bidirectional
        )
        self.decoder = nn.LSTM(embedding, hidden, layers, batch_first=True, dropout=between)
        self.attention_in = nn.Linear(hidden, hidden, bias=False)  # W_in of the "general" score
        self.attention_out = nn.Linear(2 * hidden, hidden, bias=False)  # W_out on [c; h]
        self.dropout = nn.Dropout(dropout)

    @property
    def out_features(self) -> int:
        return self.hidden

    def encode(self, source: Tensor) -> Encoded:
        """Encode padded source ids (B, S); padding never reaches a state (packed sequences).

        An empty source (no tokens, or a batch of width 0) is read as one padding token, and that
        position is what its decoder attends to: attention over no position at all would be a
        softmax of nothing but -inf, NaN in every feature and, through training, in every weight.
        """
        if source.shape[1] == 0:
            source = source.new_full((source.shape[0], 1), PAD_ID)
        mask = source != PAD_ID
        mask[:, 0] |= ~mask.any(1)
        lengths = mask.sum(1).cpu()
        packed = pack_padded_sequence(
            self.source_embedding(source), lengths, batch_first=True, enforce_sorted=False
        )
        output, (h, c) = self.encoder(packed)
        states, _ = pad_packed_sequence(output, batch_first=True, total_length=source.shape[1])
        if self.bidirectional:  # (2 layers, B, H/2) per direction -> (layers, B, H)
            h, c = (
                x.view(self.layers, 2, *x.shape[1:]).transpose(1, 2).reshape(self.layers, x.shape[1], -1)
                for x in (h, c)
            )
        return Encoded(states=states, mask=mask, start=(h, c))

    def decode(self, encoded: Encoded, target_in: Tensor, state: tuple[Tensor, Tensor] | None = None):
        """Features (B, T, H) for decoder inputs ``target_in`` (B, T), and the decoder state after them."""
        output, state = self.decoder(self.target_embedding(target_in), state or encoded.start)
        scores = self.attention_in(output) @ encoded.states.transpose(1, 2)  # (B, T, S)
        if self.mask_source:
            scores = scores.masked_fill(~encoded.mask[:, None, :], float("-inf"))
        attention = torch.softmax(scores, dim=-1)
        context = attention @ encoded.states
        features = self.dropout(torch.tanh(self.attention_out(torch.cat([context, output], dim=-1))))
        return features, state, attention

    def forward(self, source: Tensor, target_in: Tensor) -> Tensor:
        """Teacher-forced decoder features (B, T, H); ``target_in`` is the target shifted right."""
        features, _, _ = self.decode(self.encode(source), target_in)
        return features
