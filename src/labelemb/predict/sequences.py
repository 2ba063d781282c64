"""A sequence-to-sequence run on new source lines: decoded as its checks decoded dev and test.

Each line becomes the run's source tokens (its corpus's tokenizer, cut as the run cut its sources:
``data.text.truncate_source``, then ``decode.max_source_tokens``), ids of its saved source
vocabulary, and is decoded by the task's own decoder with the run's ``decode:`` settings (beam,
length limits, ``<unk>`` replacement, batches of similar length).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..data.text.corpus import PAD, TOKENIZERS, Vocabulary, corpus_layout, pad_batch
from ..data.text.options import TextOptions
from ..data.text.sequences import TextPairs
from ..tasks import Predictor as TaskPredictor
from ..tasks.decode import DecodeOptions
from ..tasks.seq2seq import SequenceTask
from .network import Classifier
from .source import PredictError, Trained


def source_tokenizer(trained: Trained) -> Callable[[str], list[str]]:
    """How the run's corpus made source lines tokens: ``data.text.tokenizer``, else the corpus's own."""
    config = trained.config
    name = config.section(TextOptions).tokenizer
    if name is None:
        name = "words" if config.data.name == "files" else corpus_layout(config.data.name).tokenizer
    return TOKENIZERS[name]


def source_pairs(lines: Sequence[str], trained: Trained) -> TextPairs:
    """``lines`` as the source side of a split (no targets), cut and encoded as the run's were."""
    if trained.pair_vocabularies is None:
        raise PredictError(f"{trained.origin} has no source and target vocabularies: it cannot decode")
    config = trained.config
    tokenize = source_tokenizer(trained)
    limits = [config.section(TextOptions).truncate_source, config.section(DecodeOptions).max_source_tokens]
    tokens = []
    for line in lines:
        words = tokenize(line)
        for limit in limits:
            words = words if limit is None else words[:limit]
        tokens.append(words)
    source = Vocabulary(trained.pair_vocabularies[0])
    ids = [source.encode(words) for words in tokens]
    count = len(ids)
    return TextPairs(
        source=pad_batch(ids, pad=source.index[PAD]) if ids else torch.zeros((0, 1), dtype=torch.long),
        target=torch.zeros((count, 2), dtype=torch.long),
        source_lengths=torch.tensor([len(i) for i in ids], dtype=torch.long),
        target_lengths=torch.full((count,), 2, dtype=torch.long),
        source_tokens=tokens,
        reference_tokens=[[] for _ in range(count)],
    )


def decode_lines(trained: Trained, network: Classifier, pairs: TextPairs, device: torch.device) -> list[str]:
    """Each source of ``pairs`` decoded to a line of target tokens (joined by spaces)."""
    config = trained.config
    target = Vocabulary(trained.pair_vocabularies[1])  # type: ignore[index]
    decoding = config.section(DecodeOptions)
    task = SequenceTask(
        metric="bleu",  # unused: nothing is scored
        target_vocabulary=target,
        test_in_train=[False] * len(pairs),
        decoding=decoding,
        eval_batch_size=decoding.batch_size,
    )
    autocast = torch.bfloat16 if config.train.precision == "bf16" else None
    predict = TaskPredictor(network, network.model, network.method, autocast=autocast)
    sentences = task.decode_split(predict, pairs.to(device))
    network.eval()  # evaluating() leaves a network in training mode
    # Tokens joined by spaces, as a check writes its decoded dev.txt and test.txt.
    return [" ".join(words) for words in sentences]
