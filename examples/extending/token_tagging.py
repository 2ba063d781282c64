"""Extending labelemb, example 4: a task of its own, token classification (a tag for every word).

Three registrations make it: a data set of a new kind (``tagged_tokens``), a backbone that reads
that kind (word ids ``(B, T)`` to features ``(B, T, d)``), and the task that trains on it. The
task gives the method one row per real token (the features at the positions that are not
padding, flattened to ``(N, d)``), so every method that serves token rows is the tagger's output
layer unchanged, and one that does not (``lwr``: a soft label per training example) is refused
before any data is read. It evaluates the token error on dev and test and declares how that
figure reads (its ``Scoring``), which every summary, comparison table and curve then follows.

The corpus is a folder (``data.dir``) holding ``train.txt``, ``dev.txt`` and ``test.txt``: one
sentence a line, each word written ``word/TAG`` (``the/OTHER cat/NOUN sees/VERB a/OTHER dog/NOUN``).
Config::

    data: {name: tagged, dir: corpus}
    model: {name: tagger}
    method: {name: label_smoothing}
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from labelemb import data, models, tasks
from labelemb.data import DataError, DataRequest, Dataset
from labelemb.data.base import epoch_permutation
from labelemb.tasks import Predictor, Scoring
from labelemb.tasks.base import rows_problem

#: Word ids 0 and 1: padding, and a word the training sentences never had.
WORDS = ("<pad>", "<unk>")
#: The tag of a padding position: never a row.
PAD_TAG = -1
SPLITS = ("train", "dev", "test")

# ---------------------------------------------------------------------------- the data set


@dataclass
class TaggedSplit:
    """Sentences as word ids ``inputs`` (N, T), padded with 0, and their tag ids ``labels`` (N, T),
    padded with :data:`PAD_TAG`."""

    inputs: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device) -> TaggedSplit:
        return TaggedSplit(self.inputs.to(device), self.labels.to(device))

    def first(self, count: int) -> TaggedSplit:
        return TaggedSplit(self.inputs[:count], self.labels[:count])


@dataclass
class TaggedDataset(Dataset):
    """Tagged sentences: ``class_names`` are the tags, ``words`` the vocabulary of the training
    sentences; a backbone is built for ``input_shape = (len(words),)``."""

    yields: str = "tagged_tokens"
    words: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.words),)


def read_tagged(path: Path) -> list[list[tuple[str, str]]]:
    """The sentences of a ``word/TAG`` file, as (word, tag) pairs."""
    if not path.is_file():
        raise DataError(f"{path} is missing: the tagged corpus needs {', '.join(s + '.txt' for s in SPLITS)}")
    sentences = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        pairs = [token.rpartition("/")[::2] for token in line.split()]
        if any(not word or not tag for word, tag in pairs):
            raise DataError(f"{path}:{number}: every word must be written word/TAG")
        if pairs:
            sentences.append(pairs)
    return sentences


@data.register("tagged", yields="tagged_tokens")
def load_tagged(request: DataRequest) -> TaggedDataset:
    if request.dir is None:
        raise DataError("data 'tagged' reads train.txt, dev.txt and test.txt from data.dir: set data.dir")
    corpus = {split: read_tagged(Path(request.dir) / f"{split}.txt") for split in SPLITS}
    words = [*WORDS, *sorted({word for sentence in corpus["train"] for word, _ in sentence})]
    tags = sorted({tag for sentence in corpus["train"] for _, tag in sentence})
    word_id = {word: i for i, word in enumerate(words)}
    tag_id = {tag: i for i, tag in enumerate(tags)}
    width = max(len(sentence) for sentences in corpus.values() for sentence in sentences)

    def encode(split: str) -> TaggedSplit:
        inputs = torch.zeros(len(corpus[split]), width, dtype=torch.long)
        labels = torch.full((len(corpus[split]), width), PAD_TAG, dtype=torch.long)
        for row, sentence in enumerate(corpus[split]):
            for column, (word, tag) in enumerate(sentence):
                if tag not in tag_id:
                    raise DataError(f"{split}.txt has tag {tag!r}, which train.txt never has")
                inputs[row, column] = word_id.get(word, 1)
                labels[row, column] = tag_id[tag]
        return TaggedSplit(inputs, labels)

    return TaggedDataset(
        name="tagged",
        train=encode("train"),
        dev=encode("dev"),
        test=encode("test"),
        class_names=tags,
        words=words,
    ).limited(request.max_train_pairs)


# ---------------------------------------------------------------------------- the backbone


@models.register("tagger", inputs="tagged_tokens")
class WindowTagger(nn.Module):
    """Each word's embedding with its two neighbours' (a width-3 convolution), then ReLU."""

    output_init_std = None

    def __init__(self, input_shape: tuple[int, ...], embedding_dim: int = 32, width: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(input_shape[0], embedding_dim, padding_idx=0)
        self.window = nn.Conv1d(embedding_dim, width, kernel_size=3, padding=1)
        self.out_features = width

    def forward(self, ids: Tensor) -> Tensor:
        """Features ``(B, T, width)`` of word ids ``(B, T)``."""
        return torch.relu(self.window(self.embedding(ids).transpose(1, 2))).transpose(1, 2)


# ---------------------------------------------------------------------------- the task

#: The figure the task is judged by: the test token error in percent, lower is better.
TOKEN_ERROR = Scoring(
    metric="test_token_error",  # the summary key of its test value
    name="test token error",
    unit="%",
    higher_is_better=False,
    curve="test_token_error",  # what the curves figure draws over training
    area="accuracy",  # an error in percent: AUAC over 1 - error / 100
    labels="classes",
)


@tasks.register("tagging", serves="tagged_tokens")
@dataclass
class Tagging:
    """A tag per word: the rows are the real tokens, the metric the token error (%)."""

    data_kind: ClassVar[str] = "a tagged corpus (a tag per word)"
    selectable: ClassVar[tuple[str, ...]] = ("dev_token_error",)
    selected_fields: ClassVar[tuple[str, ...]] = ()
    scorings: ClassVar[tuple[Scoring, ...]] = (TOKEN_ERROR,)
    scoring: ClassVar[Scoring] = TOKEN_ERROR

    metrics: tuple[str, ...] = ("dev_token_error", "test_token_error")
    selection_metric: str = "dev_token_error"
    lower_is_better: bool = True
    eval_batch_size: int = 1000

    @classmethod
    def for_run(cls, config: Any, dataset: TaggedDataset) -> Tagging:
        return cls(eval_batch_size=config.train.eval_batch_size)

    @staticmethod
    def method_problem(name: str) -> str | None:
        return rows_problem(name, "token", "a token tagger")

    def run_files(self, dataset: TaggedDataset) -> dict[str, str]:
        return {}

    def epoch_order(self, split: TaggedSplit, seed: int, epoch: int, batch_size: int) -> Tensor:
        return epoch_permutation(seed, epoch, len(split))

    def batch(self, split: TaggedSplit, index: Tensor) -> tuple[Tensor, Tensor]:
        return split.inputs[index], split.labels[index]

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``(B, T, d)`` at the tokens that are not padding, as rows ``(N, d)``."""
        real = targets != PAD_TAG
        return features[real], targets[real]

    def work(self, split: TaggedSplit, index: Tensor) -> float:
        return float((split.labels[index] != PAD_TAG).sum())

    def evaluate(self, predict: Predictor, dev: TaggedSplit | None, test: TaggedSplit) -> dict[str, Any]:
        results = {} if dev is None else {"dev_token_error": self.token_error(predict, dev)}
        results["test_token_error"] = self.token_error(predict, test)
        return results

    def evaluation_files(self) -> dict[str, str]:
        return {}

    def summary_fields(self) -> dict[str, Any]:
        return {}

    def label_representation(
        self, predict: Predictor, dev: TaggedSplit | None, test: TaggedSplit, num_classes: int
    ) -> tuple[Tensor, str]:
        """Row c: the softmax averaged over the tokens tagged c in dev (test if none)."""
        split, name = (dev, "dev") if dev is not None else (test, "test")
        sums, counts = torch.zeros(num_classes, num_classes), torch.zeros(num_classes)
        for logits, tags in self.scored_tokens(predict, split):
            sums.index_add_(0, tags.cpu(), torch.softmax(logits.float(), -1).cpu())
            counts.index_add_(0, tags.cpu(), torch.ones(len(tags)))
        return sums / counts.clamp(min=1)[:, None], f"mean softmax over the tokens of {name}"

    def token_error(self, predict: Predictor, split: TaggedSplit) -> float:
        """Percentage of the split's tokens whose argmax tag is wrong."""
        wrong = total = 0
        for logits, tags in self.scored_tokens(predict, split):
            wrong += int((logits.argmax(-1) != tags).sum())
            total += len(tags)
        return 100.0 * wrong / max(total, 1)

    def scored_tokens(self, predict: Predictor, split: TaggedSplit) -> Iterator[tuple[Tensor, Tensor]]:
        """The logits and tags of the split's real tokens, a batch of sentences at a time."""
        with torch.inference_mode(), predict.evaluating():
            for start in range(0, len(split), self.eval_batch_size):
                ids = split.inputs[start : start + self.eval_batch_size]
                with predict.precision(ids.device):
                    features, tags = self.rows(
                        predict.model(ids), split.labels[start : start + self.eval_batch_size]
                    )
                    yield predict.method.logits(features), tags
