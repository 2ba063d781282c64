"""The sequence-to-sequence task: decoder states as the method's rows, decoded output scored by BLEU / ROUGE.

Training is teacher-forced: the decoder features at the target positions that are not padding,
flattened to ``(N, d)``, are the rows, so every method of the registry that makes sense per token
is the output layer unchanged (Sun et al. 2017, Section 3.3). Evaluation decodes dev and test
(greedy or beam search, optional ``<unk>`` replacement) and scores the output against the
references' own words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data.text.corpus import BOS, EOS, PAD, UNK, Vocabulary, length_grouped_order
from ..data.text.sequences import TextDataset, TextPairs
from ..models.seq2seq import Encoded
from ..rundir import VOCABULARY_FILES
from .base import Predictor, Selectable, always_selectable, rows_problem
from .decode import DecodeOptions, beam_search, greedy_decode
from .registry import register
from .scoring import Scoring
from .text_metrics import bleu, rouge

#: Decoded test output scored against the references; labels are a vocabulary's words.
BLEU = Scoring("test_bleu", "test BLEU", "", True, "dev_bleu", "score", "vocabulary")
ROUGE_L = Scoring(
    "test_rougeL",
    "test ROUGE-L",
    "",
    True,
    "dev_rougeL",
    "score",
    "vocabulary",
    reported=(("test_rouge1", "test ROUGE-1"), ("test_rouge2", "test ROUGE-2")),
)


@register("seq2seq", serves="token_pairs", options=(DecodeOptions,))
@dataclass
class SequenceTask:
    """Train on target tokens, select and report by decoded BLEU (translation) or ROUGE (summaries).

    Test scores are quoted without the test examples that occur verbatim in training
    (``test_in_train``); the ``*_all`` metrics include them. BLEU selects by dev BLEU, ROUGE by dev
    ROUGE-L.
    """

    metric: str  # "bleu" or "rouge"
    target_vocabulary: Vocabulary
    test_in_train: list[bool]
    decoding: DecodeOptions = field(default_factory=DecodeOptions)
    #: How messages name the data it trains on.
    data_kind: ClassVar[str] = "a text corpus (pairs of token sequences)"
    #: The figures it can be judged by.
    scorings: ClassVar[tuple[Scoring, ...]] = (BLEU, ROUGE_L)
    #: It selects by its own dev score (BLEU or ROUGE-L) only.
    selectable: ClassVar[tuple[str, ...]] = ()
    #: No calibration: a decoded sequence's score is no per-token classification.
    selected_fields: ClassVar[tuple[str, ...]] = ()

    eval_batch_size: int = 100
    lower_is_better: bool = False
    bleu_signature: str = ""
    #: What reading the corpus left out or cut (training pairs too long or with an empty side,
    #: dev and test sources cut to the evaluation limit), recorded in the summary.
    data_counts: dict[str, int] = field(default_factory=dict)
    _files: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in ("bleu", "rouge"):
            raise ValueError(f"metric must be 'bleu' or 'rouge', got {self.metric!r}")

    @classmethod
    def for_run(cls, config: Any, dataset: TextDataset) -> SequenceTask:
        decoding = config.section(DecodeOptions)
        return cls(
            metric=dataset.metric,
            target_vocabulary=dataset.target_vocabulary,
            test_in_train=dataset.test_in_train,
            decoding=decoding,
            eval_batch_size=decoding.batch_size,
            data_counts={
                "dropped_long_pairs": dataset.dropped_long,
                "dropped_empty_pairs": dataset.dropped_empty,
                "cut_eval_sources": dataset.cut_eval_sources,
            },
        )

    @staticmethod
    def method_problem(name: str) -> str | None:
        """Why method ``name`` cannot be a sequence model's output layer (its rows are target tokens)."""
        return rows_problem(name, "token", "a sequence model")

    def run_files(self, dataset: TextDataset) -> dict[str, str]:
        """Both vocabularies, so that a run's ids can be read without the corpus."""
        vocabularies = (dataset.source_vocabulary, dataset.target_vocabulary)
        return {
            name: "".join(token + "\n" for token in vocabulary.tokens)
            for name, vocabulary in zip(VOCABULARY_FILES, vocabularies)
        }

    @property
    def scoring(self) -> Scoring:
        """Test BLEU, or test ROUGE-L with ROUGE-1 and -2 beside it."""
        return BLEU if self.metric == "bleu" else ROUGE_L

    @property
    def scores(self) -> tuple[str, ...]:
        return ("bleu",) if self.metric == "bleu" else ("rouge1", "rouge2", "rougeL")

    @property
    def metrics(self) -> tuple[str, ...]:
        # Reversed in the summary, where the quoted test scores come first.
        dev = tuple(f"dev_{s}" for s in reversed(self.scores))
        test_all = tuple(f"test_{s}_all" for s in reversed(self.scores))
        test = tuple(f"test_{s}" for s in reversed(self.scores))
        return dev + test_all + test

    @property
    def selection_metric(self) -> str:
        return "dev_bleu" if self.metric == "bleu" else "dev_rougeL"

    @classmethod
    def objective(cls, selection_metric: str | None) -> tuple[tuple[str, ...], bool]:
        """Dev BLEU (a translation corpus) or dev ROUGE-L (a summarisation corpus), higher better."""
        return ("dev_bleu", "dev_rougeL"), True

    # ------------------------------------------------------------------ training

    def epoch_order(self, split: TextPairs, seed: int, epoch: int, batch_size: int) -> Tensor:
        """Batches of similar length (:func:`~labelemb.data.text.corpus.length_grouped_order`), one after
        another.

        The one batch that may be short goes last, so that every ``batch_size`` slice is a batch.
        """
        return length_grouped_order(
            (split.source_lengths + split.target_lengths).tolist(), batch_size, seed, epoch
        )

    def batch(self, split: TextPairs, index: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor]:
        """``((source, target_in), target_out)`` of ``split[index]``, cut to the batch's longest sentence."""
        # One host read for both lengths; the columns are cut before the rows are gathered.
        source_length, target_length = torch.stack(
            [split.source_lengths[index].max(), split.target_lengths[index].max()]
        ).tolist()
        source = split.source[:, :source_length][index]
        target = split.target[:, :target_length][index]
        return (source, target[:, :-1]), target[:, 1:]

    def work(self, split: TextPairs, index: Tensor) -> float:
        """Source plus target tokens: what the encoder, the decoder and its output layer grow with."""
        return float((split.source_lengths[index] + split.target_lengths[index]).sum())

    def rows(self, features: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder features ``(B, T, d)`` at the non-padding target positions, as rows ``(N, d)``.

        Padding is left out here rather than marked ``ignore_index``: a head that computes every
        row it is given (an unchunked one) would otherwise pay for the padding too.
        """
        counted = targets != self.target_vocabulary.index[PAD]
        return features[counted], targets[counted]

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self,
        predict: Predictor,
        dev: TextPairs | None,
        test: TextPairs,
        selectable: Selectable = always_selectable,
    ) -> dict[str, float]:
        results: dict[str, float] = {}
        self._files = {}
        if dev is not None:
            dev_output = self.decode_split(predict, dev)
            results.update(self._scored("dev", dev_output, dev.reference_tokens))
            self._files["dev.txt"] = _lines(dev_output)
        test_output = self.decode_split(predict, test)
        kept = [i for i, seen in enumerate(self.test_in_train) if not seen]
        results.update(
            self._scored("test", [test_output[i] for i in kept], [test.reference_tokens[i] for i in kept])
        )
        results.update(
            {f"{k}_all": v for k, v in self._scored("test", test_output, test.reference_tokens).items()}
        )
        self._files["test.txt"] = _lines(test_output)
        return results

    def _scored(self, split: str, output: list[list[str]], references: list[list[str]]) -> dict[str, float]:
        if self.metric == "bleu":
            result = bleu(output, references)
            self.bleu_signature = result.signature
            return {f"{split}_bleu": result.score}
        return {f"{split}_{name}": value for name, value in rouge(output, references).items()}

    def evaluation_files(self) -> dict[str, str]:
        return dict(self._files)

    def summary_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "metric": "test_bleu" if self.metric == "bleu" else "test_rougeL",
            "higher_is_better": True,
            "reported_metrics": [f"test_{s}" for s in self.scores],
            "test_examples": len(self.test_in_train) - sum(self.test_in_train),
            "test_in_train": sum(self.test_in_train),
            "decoding": self.decoding.recorded(),
            **self.data_counts,
        }
        if self.bleu_signature:
            fields["bleu_signature"] = self.bleu_signature
        return fields

    @torch.inference_mode()
    def decode_split(self, predict: Predictor, split: TextPairs) -> list[list[str]]:
        """Every example of ``split`` decoded to target words, in the split's order."""
        output: list[list[str]] = [[] for _ in range(len(split))]
        # Sentences of similar source length together: less padding in the encoder and attention.
        order = torch.argsort(split.source_lengths.cpu(), stable=True)
        with predict.evaluating():
            for chunk in order.split(self.decoding.batch_size):
                index = chunk.to(split.source.device)
                source = split.source[index, : int(split.source_lengths[index].max())]
                with predict.precision(source.device):
                    words = self.decode_batch(
                        predict, source, [split.source_tokens[i] for i in chunk.tolist()]
                    )
                for i, sentence in zip(chunk.tolist(), words):
                    output[i] = sentence
        return output

    def decode_batch(
        self, predict: Predictor, source: Tensor, source_words: list[list[str]]
    ) -> list[list[str]]:
        """Decode one padded source batch ``(B, S)`` to target words."""
        model, method, vocabulary = predict.model, predict.method, self.target_vocabulary
        encoded = model.encode(source)

        def step(tokens: Tensor, state: tuple[Encoded, Any]) -> tuple[Tensor, tuple[Encoded, Any]]:
            encoded, hidden = state
            features, hidden, _ = model.decode(encoded, tokens[:, None], hidden)
            return torch.log_softmax(method.logits(features[:, 0]).float(), -1), (encoded, hidden)

        options = self.decoding
        lengths = encoded.mask.sum(1)
        max_length = (options.length_ratio * lengths).long() + options.max_length
        bos, eos = vocabulary.index[BOS], vocabulary.index[EOS]
        if options.beam == 1:
            ids = greedy_decode(step, (encoded, None), bos, eos, max_length)
        else:
            ids = beam_search(
                step, (encoded, None), _reorder, bos, eos, max_length, options.beam, options.length_normalise
            )
        if options.replace_unk:
            words = self._replace_unknown(model, encoded, ids, source_words)
        else:
            words = [[vocabulary.tokens[i] for i in sentence] for sentence in ids]
        return [[word for word in sentence if word not in (PAD, BOS)] for sentence in words]

    def _replace_unknown(
        self, model: Any, encoded: Encoded, ids: list[list[int]], source_words: list[list[str]]
    ) -> list[list[str]]:
        """Each ``<unk>`` of the output becomes the source word its step attended to most (the
        release's ``-unk``): the decoder is run once more over its own output to read the attention."""
        vocabulary = self.target_vocabulary
        unknown = vocabulary.index[UNK]
        words = [[vocabulary.tokens[i] for i in sentence] for sentence in ids]
        if not any(unknown in sentence for sentence in ids):
            return words
        pad, bos = vocabulary.index[PAD], vocabulary.index[BOS]
        width = max(len(sentence) for sentence in ids)
        target_in = torch.full((len(ids), max(width, 1)), pad, dtype=torch.long, device=encoded.mask.device)
        for row, sentence in enumerate(ids):
            target_in[row, : len(sentence)] = torch.tensor(
                [bos, *sentence[:-1]] if sentence else [], dtype=torch.long
            )
        _, _, attention = model.decode(encoded, target_in)  # (B, T, S)
        attended = attention.argmax(-1).tolist()
        for row, sentence in enumerate(ids):
            for position, token in enumerate(sentence):
                if token == unknown and attended[row][position] < len(source_words[row]):
                    words[row][position] = source_words[row][attended[row][position]]
        return words

    def label_representation(
        self, predict: Predictor, dev: TextPairs | None, test: TextPairs, num_classes: int
    ) -> tuple[Tensor, str]:
        """Row c: the teacher-forced softmax averaged over the target tokens c of dev (or test)."""
        split, name = (dev, "dev") if dev is not None else (test, "test")
        sums = torch.zeros(num_classes, num_classes)
        counts = torch.zeros(num_classes)
        with torch.inference_mode(), predict.evaluating():
            for start in range(0, len(split), self.eval_batch_size):
                index = torch.arange(
                    start, min(start + self.eval_batch_size, len(split)), device=split.source.device
                )
                (source, target_in), target_out = self.batch(split, index)
                with predict.precision(source.device):
                    features, labels = self.rows(predict.model(source, target_in), target_out)
                    probs = torch.softmax(predict.method.logits(features).float(), -1)
                sums.index_add_(0, labels.cpu(), probs.cpu())
                counts.index_add_(0, labels.cpu(), torch.ones(len(labels)))
        return sums / counts.clamp(min=1)[:, None], f"mean softmax over the target tokens of {name}"


def _reorder(state: tuple[Encoded, Any], rows: Tensor) -> tuple[Encoded, Any]:
    encoded, hidden = state
    start_h, start_c = encoded.start
    selected = Encoded(encoded.states[rows], encoded.mask[rows], (start_h[:, rows], start_c[:, rows]))
    if hidden is not None:
        hidden = (hidden[0][:, rows], hidden[1][:, rows])
    return selected, hidden


def _lines(sentences: list[list[str]]) -> str:
    return "".join(" ".join(sentence) + "\n" for sentence in sentences)
