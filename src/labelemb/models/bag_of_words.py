"""A bag of words and word bigrams (fastText-style) as a feature extractor for text classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register
from .stacked_layers import grouped_forward

#: The word id of padding (the vocabulary's ``<pad>``): never part of a bag.
PAD_ID = 0
#: Multiplier of the bigram hash ``(first * BIGRAM_PRIME + second) mod buckets``: a prime, small
#: enough that ``first * BIGRAM_PRIME`` cannot overflow int64 below 9 x 10^12 words.
BIGRAM_PRIME = 1_000_003


def bigram_ids(ids: Tensor, vocabulary_size: int, buckets: int) -> tuple[Tensor, Tensor]:
    """Each pair of neighbouring words hashed to one of ``buckets`` rows after the vocabulary's.

    ``ids`` ``(..., L)`` padded with :data:`PAD_ID`; returns the bigram ids ``(..., L - 1)``,
    ``vocabulary_size + (a * BIGRAM_PRIME + b) mod buckets`` for words ``a`` then ``b``, and
    whether each is a real bigram (neither word padding). A bigram touching padding gets id
    :data:`PAD_ID`, so it can be looked up harmlessly and weighted zero.
    """
    first, second = ids[..., :-1], ids[..., 1:]
    real = (first != PAD_ID) & (second != PAD_ID)
    hashed = vocabulary_size + (first * BIGRAM_PRIME + second) % buckets
    return hashed.masked_fill(~real, PAD_ID), real


def bag_entries(ids: Tensor, vocabulary_size: int, buckets: int) -> tuple[Tensor, Tensor]:
    """The rows a text's bag averages and their weights: its words, then its bigrams (if ``buckets``).

    Returns ``(..., T)`` row ids and ``(..., T)`` float weights, ``1 / n`` on each of the ``n`` real
    entries of a text and 0 on padding, so that a weighted sum is the mean over the text's words
    and bigrams (fastText averages both alike). A text of no words weighs nothing: its bag is zero.
    """
    entries, real = ids, ids != PAD_ID
    if buckets and ids.shape[-1] > 1:
        bigrams, real_bigrams = bigram_ids(ids, vocabulary_size, buckets)
        entries = torch.cat([ids, bigrams], -1)
        real = torch.cat([real, real_bigrams], -1)
    weights = real.float()
    return entries, weights / weights.sum(-1, keepdim=True).clamp(min=1.0)


def mean_bag(ids: Tensor, table: Tensor, vocabulary_size: int, buckets: int) -> Tensor:
    """The mean embedding of each text's words and bigrams: ``(B, d)`` from ids ``(B, L)`` and a table
    ``(V + buckets, d)``; for seeds side by side, ``(S, B, d)`` from ids ``(S, B, L)`` and one table
    per seed ``(S, V + buckets, d)``.

    One ``embedding_bag`` (weighted sum) does it: stacked, seed ``s``'s ids are offset by ``s``
    tables into the seeds' tables laid end to end, so every seed reads its own.
    """
    entries, weights = bag_entries(ids, vocabulary_size, buckets)
    if table.dim() == 2:
        return F.embedding_bag(entries, table, per_sample_weights=weights, mode="sum")
    seeds, rows = table.shape[:2]
    offsets = torch.arange(seeds, device=ids.device).mul_(rows).view(seeds, 1, 1)
    flat = (entries + offsets).flatten(0, 1)
    bags = F.embedding_bag(flat, table.flatten(0, 1), per_sample_weights=weights.flatten(0, 1), mode="sum")
    return bags.unflatten(0, (seeds, ids.shape[1]))


@register("bag_of_words", inputs="texts")
class BagOfWords(nn.Module):
    """fastText's text classifier without its output layer (Joulin et al. 2017, "Bag of Tricks for
    Efficient Text Classification", Section 2): ``h = mean(E[w_1], ..., E[w_n], E[g_1], ..., E[g_{n-1}])``
    over the text's words ``w_i`` and word bigrams ``g_i`` (hashed into ``bigram_buckets`` rows,
    Section 2.2; 0: words only), then ``hidden`` fully connected ReLU layers, if any.

    Built for inputs of shape ``(vocabulary size,)``: word ids ``(N, L)`` padded with 0, which no
    bag counts. ``E`` starts uniform in ``[-1/d, 1/d]`` (``d = embedding_dim``), as fastText's input
    vectors do; the hidden layers have PyTorch's default initialisation, and so does the method's
    output layer (``output_init_std`` None).

    Adam updates every row of ``E`` at every step (its gradient is dense), so a step costs in
    proportion to ``(V + bigram_buckets) x embedding_dim``: the defaults hold 7.4M numbers for a
    50,000-word vocabulary, about 9 s per epoch of debian-sections (49k texts, batches of 100) on
    one CPU thread. fastText learns with SGD at a rate near 0.1; with Adam a rate of 1e-2 trains
    this model in 2-4 epochs there, where 1e-3 needs many more.
    """

    output_init_std = None
    #: The ``train.lr`` a run of this backbone takes when its config gives none (Adam's 1e-3, the
    #: run's own default, leaves it far from trained after 5 epochs: see the docstring).
    default_lr: ClassVar[float] = 1e-2

    def __init__(
        self,
        input_shape: tuple[int, ...],
        embedding_dim: int = 64,
        bigram_buckets: int = 2**16,
        hidden: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        if len(input_shape) != 1 or input_shape[0] < 2:
            raise ValueError(f"a bag of words is built for (vocabulary size,), got {tuple(input_shape)}")
        if embedding_dim < 1 or bigram_buckets < 0:
            raise ValueError(
                f"embedding_dim must be >= 1 and bigram_buckets >= 0, got {embedding_dim}, {bigram_buckets}"
            )
        self.vocabulary_size = int(input_shape[0])
        self.bigram_buckets = int(bigram_buckets)
        # Read through mean_bag (a weighted sum is the mean), which also serves stacked seeds.
        rows = self.vocabulary_size + self.bigram_buckets
        self.embedding = nn.EmbeddingBag(rows, embedding_dim, mode="sum")
        nn.init.uniform_(self.embedding.weight, -1.0 / embedding_dim, 1.0 / embedding_dim)
        layers: list[nn.Module] = []
        width = embedding_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, ids: Tensor) -> Tensor:
        bags = mean_bag(ids, self.embedding.weight, self.vocabulary_size, self.bigram_buckets)
        return self.layers(bags)

    def stacked_forward(self, params: Mapping[str, Tensor], ids: Tensor) -> Tensor:
        """Features ``(S, B, d)`` of word ids ``(S, B, L)``: each seed's mean bag from its own table
        (``embedding.weight`` stacked, ``(S, V + buckets, d)``), then the hidden layers grouped
        (the batched trainer's hook, :mod:`.stacked_layers`)."""
        bags = mean_bag(ids, params["embedding.weight"], self.vocabulary_size, self.bigram_buckets)
        return grouped_forward(self.layers, params, bags)
