"""The predictor :func:`labelemb.load` returns: class names and probabilities for new inputs."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..data import Split
from ..data.base import as_float_images
from ..data.text.classes import TextClassSplit
from ..metrics.conformal import LEVEL
from ..progress import draws_bar
from ..tasks.text_classification import TextClassification
from .inputs import (
    array_size,
    image_batch,
    image_items,
    image_shape,
    range_note,
    resize_note,
    text_split,
    tokens_note,
)
from .network import Classifier
from .raw_texts import raw_text_features, reads_raw_texts
from .sequences import decode_lines, source_pairs
from .sets import SET_METHOD, Calibration, PredictionSet, calibration_for, check_request, read_sets
from .source import PredictError, Trained
from .tags import TagPrediction, read_tags, tag_decision, tag_probabilities

#: Texts are read this many evaluation batches at a time (each part sorted by length, as the run's
#: evaluation sorts a split); images one evaluation batch at a time, so memory holds one batch.
TEXT_PARTS = 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """One input's predicted class, its probability, and the best ``k`` classes when asked."""

    label: str
    probability: float
    top: tuple[tuple[str, float], ...] = ()


class Predictor:
    """A trained classifier (a run folder's or a bundle's), ready to predict.

    ``predict(inputs)`` gives each input's class name and probability, ``predict_proba(inputs)``
    the ``(N, m)`` probabilities in the order of :attr:`classes`, ``logits(inputs)`` the scores,
    ``predict_sets(inputs, level)`` each input's conformal prediction set;
    probabilities are ``softmax(logits / T)`` with the temperature ``T`` the run fit on its dev
    split (:attr:`temperature`; None: plain softmax). A multi-label run (:attr:`multi_label`)
    predicts each input's tags instead (:class:`~labelemb.predict.tags.TagPrediction`): each
    tag's probability is the sigmoid of its score, and its tags those that reach
    :attr:`threshold` (or the ``top_k`` most probable). Inputs are texts for a text run; for an
    image run files' paths, Pillow images, arrays ``(H, W, C)``, a list of arrays ``(H, W)``, a
    batch ``(N, C, H, W)`` (float in [0, 1], or uint8), a batch ``(N, H, W[, C])`` as an ``.npz``
    file's ``x``, or flat rows ``(N, H * W)`` (:func:`.inputs.image_items`; one 2-D image is
    ``img[None]``). Image arrays of another size are resized, with one warning line a call
    (logged, so on stderr, and kept in :attr:`notes`). :attr:`model` is the network (an
    ``nn.Module`` from input tensor to class scores) for fine-tuning or export.
    """

    def __init__(self, trained: Trained, model: Classifier, device: str | torch.device = "cpu") -> None:
        self.trained = trained
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.progress = False
        self.batch_size = trained.config.train.eval_batch_size
        # Evaluation ran in bf16 where training did: so do its predictions.
        self.autocast = torch.bfloat16 if trained.config.train.precision == "bf16" else None
        self._calibration: Calibration | None = None
        #: The images predicted so far, as the network reads them: lowest, highest, sum, count.
        self.seen = (float("inf"), float("-inf"), 0.0, 0)
        #: The texts predicted so far: their tokens in all, and how many.
        self.tokens = (0.0, 0)
        #: The warning lines of the latest call (image arrays resized to the run's size); empty if none.
        self.notes: list[str] = []
        self._resized: Counter[tuple[int, int]] = Counter()

    def __repr__(self) -> str:
        return (
            f"Predictor({str(self.trained.origin)!r}, {len(self.classes)} classes, step {self.trained.step})"
        )

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the columns of :meth:`predict_proba`."""
        return list(self.trained.class_names)

    @property
    def temperature(self) -> float | None:
        """The temperature the run fit on its dev split at the check read, or None."""
        return self.trained.temperature

    @property
    def reads(self) -> str:
        """What the network reads: ``images`` or ``texts`` (``token_pairs``: a sequence run)."""
        return self.trained.reads

    @property
    def multi_label(self) -> bool:
        """Whether the run predicts a set of tags per input (:attr:`classes` are its tags)."""
        return self.trained.multi_label

    @property
    def threshold(self) -> float | None:
        """A multi-label run's tag threshold at the check read (a tag is predicted where its
        probability reaches it); None for a single-label run."""
        return self.trained.tag_threshold

    def logits(self, inputs: Any, names: Sequence[str] | None = None) -> Tensor:
        """The class scores ``(N, m)`` (float32, on the CPU) of ``inputs``, in their order."""
        if self.reads not in ("images", "texts"):
            raise PredictError(
                f"{self.trained.origin} is a sequence-to-sequence run: it decodes source lines "
                "(Predictor.translate), it has no class scores"
            )
        self.notes, self._resized = [], Counter()
        parts = [self._scores(part) for part in self.parts(inputs, names)]
        logits = torch.cat(parts) if parts else torch.zeros((0, len(self.classes)))
        note = resize_note(self._resized, len(logits), self.trained)
        self.notes = [note] if note else []
        for line in self.notes:
            logger.warning(line)  # once a call, whatever its number of parts
        return logits

    def predict_proba(self, inputs: Any, names: Sequence[str] | None = None) -> np.ndarray:
        """The probability of every class ``(N, m)``, with the run's temperature where it has one
        (a multi-label run: each tag's own probability)."""
        return self.probabilities(self.logits(inputs, names)).numpy()

    def probabilities(self, logits: Tensor) -> Tensor:
        """``softmax(logits / T)`` (plain softmax without a temperature), in float64; a multi-label
        run's ``sigmoid(logits)``, each tag's own."""
        if self.multi_label:
            return tag_probabilities(logits)
        logits = logits.double()
        if self.temperature is not None:
            logits = logits / self.temperature
        return torch.softmax(logits, dim=-1)

    def predict(
        self, inputs: Any, top_k: int | None = None, *, threshold: float | None = None
    ) -> list[Prediction] | list[TagPrediction]:
        """Each input's predicted class and probability (and its ``top_k`` best classes if above 1).
        A multi-label run's: each input's tags, those whose probability reaches ``threshold`` (the
        run's, :attr:`threshold`, where neither is given) or its ``top_k`` most probable."""
        threshold, top_k = tag_decision(self.trained, threshold, top_k)
        logits = self.logits(inputs)
        if self.multi_label:
            return self.read_tags(logits, threshold, top_k)
        return self.read_predictions(logits, top_k or 1)

    def read_tags(self, logits: Tensor, threshold: float | None, top_k: int | None) -> list[TagPrediction]:
        """Each row of a multi-label run's ``logits`` as its tags (:func:`.tags.tag_decision` says
        which of ``threshold`` and ``top_k`` is taken)."""
        return read_tags(self.probabilities(logits), self.classes, threshold, top_k)

    def read_predictions(self, logits: Tensor, top_k: int = 1) -> list[Prediction]:
        """Each row of ``logits`` as a :class:`Prediction` (its argmax is the class, as evaluation counts)."""
        probabilities = self.probabilities(logits)
        best = logits.argmax(dim=-1)
        k = min(max(top_k, 1), len(self.classes))
        top_p, top_i = probabilities.topk(k, dim=-1)
        names = self.classes
        out = []
        for row in range(len(best)):
            top = tuple((names[i], float(p)) for i, p in zip(top_i[row].tolist(), top_p[row].tolist()))
            label = int(best[row])
            out.append(Prediction(names[label], float(probabilities[row, label]), top if top_k > 1 else ()))
        return out

    def predict_sets(
        self, inputs: Any, level: float = LEVEL, method: str = SET_METHOD, *, data_dir: str | None = None
    ) -> list[PredictionSet]:
        """Each input's conformal prediction set at the target coverage ``level`` with the score
        ``method`` (``thr``, ``aps`` or ``raps``; never randomised), calibrated on the run's dev
        split (:mod:`.sets`); ``data_dir``: where its data is, where its calibration must be
        computed from it (a run folder evaluated before conformal.safetensors was recorded)."""
        level, method = check_request(level, method)
        calibration = self.calibration(data_dir)
        return read_sets(self.logits(inputs), calibration, level, method, self.trained)

    def calibration(self, data_dir: str | None = None) -> Calibration:
        """The conformal calibration of the check read (:func:`.sets.calibration_for`), computed once."""
        if self._calibration is None:
            self._calibration = calibration_for(self, data_dir)
        return self._calibration

    def translate(self, lines: Any) -> list[str]:
        """A sequence-to-sequence run's output for each source line (or a split of its corpus, as
        the run holds it), decoded with the run's ``decode:`` settings; tokens joined by spaces."""
        if self.reads != "token_pairs":
            raise PredictError(f"{self.trained.origin} is a classifier: use predict, not translate")
        if hasattr(lines, "source_tokens"):
            pairs = lines  # a split of the run's corpus, as read for training
        else:
            pairs = source_pairs([lines] if isinstance(lines, str) else list(lines), self.trained)
        return decode_lines(self.trained, self.model, pairs, self.device)

    # ------------------------------------------------------------------ batches

    def parts(self, inputs: Any, names: Sequence[str] | None) -> Iterator[Tensor | TextClassSplit]:
        """``inputs`` a part at a time, made what the network reads (a progress bar over the parts)."""
        if isinstance(inputs, TextClassSplit) and reads_raw_texts(self.model):
            raise PredictError(
                "this TF-IDF run reads raw texts, not a split of word ids; give the split's texts "
                "(its data set's texts[split])"
            )
        if isinstance(inputs, Split):
            ready: Any = inputs if isinstance(inputs, TextClassSplit) else inputs.inputs
            yield from self._shown([ready], len(inputs))
            return
        if self.reads == "texts":
            features = raw_text_features(self.model, inputs)  # a TF-IDF run: its own fitted features
            if features is not None:
                yield from self._shown([features], len(features))
                return
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            size = self.batch_size * TEXT_PARTS
            starts = range(0, len(texts), size)
            for start in self._shown(starts, len(texts), size):
                part_names = None if names is None else names[start : start + size]
                part = text_split(texts[start : start + size], self.trained, part_names)
                self.tokens = (
                    self.tokens[0] + float(part.lengths.double().sum()),
                    self.tokens[1] + len(part),
                )
                yield part
            return
        items = image_items(inputs, self.trained)
        if isinstance(items, Tensor):
            yield from self._shown([self._measured(image_batch(items, self.trained))], len(items))
            return
        for start in self._shown(range(0, len(items), self.batch_size), len(items), self.batch_size):
            part = items[start : start + self.batch_size]
            part_names = None if names is None else names[start : start + len(part)]
            self._count_resized(part)
            yield self._measured(image_batch(part, self.trained, part_names))

    def _count_resized(self, part: Sequence[Any]) -> None:
        """Count the image arrays in ``part`` of another size than the run's, which get resized."""
        size = image_shape(self.trained)[1:]
        self._resized.update(s for s in map(array_size, part) if s is not None and s != size)

    def _measured(self, batch: Tensor) -> Tensor:
        """``batch``, its range and sum added to :attr:`seen`."""
        if len(batch):
            values = as_float_images(batch)
            low, high, total, count = self.seen
            self.seen = (
                min(low, float(values.min())),
                max(high, float(values.max())),
                total + float(values.double().sum()),
                count + values.numel(),
            )
        return batch

    def range_note(self, source: str) -> str | None:
        """A warning line when the images predicted so far lie far from the training images' range
        or mean, or the texts from their length (:func:`~labelemb.predict.inputs.range_note`,
        :func:`~labelemb.predict.inputs.tokens_note`); None when near, or none was predicted."""
        if self.tokens[1]:
            return tokens_note(self.tokens[0] / self.tokens[1], self.trained, source)
        low, high, total, count = self.seen
        return range_note(low, high, total / count, self.trained, source) if count else None

    def _shown(self, parts: Sequence[Any], rows: int, per_part: int | None = None) -> Iterator[Any]:
        shown = draws_bar(self.progress) and rows > self.batch_size
        with tqdm(total=rows, desc="predicting", unit="row", disable=not shown, leave=False) as bar:
            for part in parts:
                yield part
                bar.update(min(per_part or rows, rows - bar.n))

    @torch.inference_mode()
    def _scores(self, part: Tensor | TextClassSplit) -> Tensor:
        """The class scores of one part: texts through the run's own length-sorted evaluation
        batches, images and features in evaluation batches in order."""
        if isinstance(part, TextClassSplit):
            task = TextClassification(eval_batch_size=self.batch_size)
            return task.split_logits(self._network, part)
        return torch.cat([self._network(rows) for rows in part.split(self.batch_size)])

    def _network(self, rows: Tensor) -> Tensor:
        rows = as_float_images(rows.to(self.device)) if rows.dtype == torch.uint8 else rows.to(self.device)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            return self.model(rows).float().cpu()
