"""New inputs made what a trained run's network reads, exactly as its data was made for training.

Images are decoded by the image cache's own rules (:func:`labelemb.data.image_decode.decode_image`:
channels, bilinear resize, alpha on black) to the run's channels and size, as uint8; the network
makes them float a batch at a time, as evaluation does. Texts become the run's word ids (its
tokenizer, its ``max_text_tokens`` cut, its saved vocabulary) or, for a pretrained encoder, that
encoder's tokenizer's ids, padded as the data set pads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.base import DataError
from ..data.image_decode import PixelRangeError, decode_image
from ..data.text.classes import TextClassSplit, encoder_ids, encoder_length, load_tokenizer, padded_ids
from ..data.text.corpus import PAD, TOKENIZERS, Vocabulary
from ..data.text.options import TextOptions
from ..models import model_text_encoder
from .source import PredictError, Trained


def image_shape(trained: Trained) -> tuple[int, int, int]:
    """(channels, height, width) of the images the run reads (a frozen backbone's, if frozen)."""
    shape = trained.backbone_input_shape if trained.frozen else trained.input_shape
    if shape is None or len(shape) != 3:
        raise PredictError(f"{trained.origin}: the run does not record the shape of its images")
    return int(shape[0]), int(shape[1]), int(shape[2])


def image_items(inputs: Any, trained: Trained) -> Tensor | list[Any]:
    """``inputs`` as one ready batch ``(N, C, H, W)`` of the run's shape, or as a list of images
    (one source each, for :func:`image_batch`). An array or a tensor is read by its shape against
    the run's ``(C, H, W)``:

    - ``(N, C, H, W)``: the ready batch (float in [0, 1], or uint8), as it is;
    - ``(N, H, W)`` or ``(N, H, W, C)``: the layout of an ``.npz`` file's ``x`` in training (and in
      ``labelemb predict``), one image a row, each converted and resized as training converts it;
    - ``(N, H * W)``: flat rows (scikit-learn's layout), each one image of the run's size;
    - ``(H, W, C)`` with C in 1..4: one image.

    A 2-D array is never one image (``(5, 64)`` would be read as one 5 x 64 image, ``(8, 8)`` as
    8 rows of 8 values): one is given as ``img[None]`` or ``[img]``. Any other shape (rows of
    another width, channels first but not the run's, an axis too many) and any shape that reads two
    ways is refused with one line naming the shape given, the readings and how to say which.
    """
    if isinstance(inputs, Tensor):
        if inputs.ndim == 4 and tuple(inputs.shape[1:]) == image_shape(trained):
            return inputs
        inputs = inputs.detach().cpu().numpy()
    if not isinstance(inputs, np.ndarray):
        return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    channels, height, width = image_shape(trained)
    shape = inputs.shape
    if inputs.ndim == 1 and inputs.dtype.kind in "OUS":  # paths or encoded images, one a row
        return list(inputs)
    if inputs.ndim == 2:
        return _flat_rows(inputs, trained)
    if inputs.ndim == 3:
        if shape[1:] != (height, width) and shape[-1] <= 4:
            return [inputs]  # (H, W, C): one image
        if channels > 1 and shape[0] == channels:
            raise PredictError(
                f"an image array of shape {shape} reads as one channels-first image or {shape[0]} "
                "grey ones: give one image channels last (x.transpose(1, 2, 0)), grey images as a "
                "list of (H, W) arrays"
            )
        return list(inputs)
    if inputs.ndim == 4 and shape[1:] == (channels, height, width):
        return torch.as_tensor(inputs)
    channels_last = inputs.ndim == 4 and shape[-1] <= 4 and (shape[1] > 4 or shape[1:3] == (height, width))
    if channels_last:
        return list(inputs)
    raise PredictError(
        f"images of shape {shape}: this run reads a batch (N, {channels}, {height}, {width}) "
        f"(channels, height, width), or channels last (N, H, W) or (N, H, W, C), each image then "
        f"converted and resized as training converts an .npz file's x, or flat rows "
        f"(N, {height * width}); move a channels-first axis last (x.transpose(0, 2, 3, 1)) or give "
        f"(N, {channels}, {height}, {width})"
    )


def _flat_rows(inputs: np.ndarray, trained: Trained) -> list[Any]:
    """A 2-D array as its rows, each a flat image (:func:`flat_image` reshapes it), or a refusal:
    a 2-D array of another width is one image or rows of another data set, and predict cannot tell."""
    channels, height, width = image_shape(trained)
    count, values = inputs.shape
    if values == height * width:
        return list(inputs)
    if channels > 1 and values == channels * height * width:
        raise PredictError(_either_order(f"an image array of shape {inputs.shape}", trained))
    raise PredictError(
        f"an image array of shape {inputs.shape} reads as one {count} x {values} image or as {count} "
        f"flat rows of {values} values, and this run's rows hold {height * width} ({height} x {width}): "
        f"give one image as img[None] (shape (1, {count}, {values})) or [img], images as (N, H, W), "
        f"flat rows as (N, {height * width})"
    )


def flat_image(row: np.ndarray, trained: Trained, name: str) -> np.ndarray:
    """One flat row of the run's ``H * W`` values as its image ``(H, W)``; one of another width, or
    of ``H * W * C`` values (channels last or first: rows do not say), is refused in one line."""
    channels, height, width = image_shape(trained)
    if row.size == height * width:
        return row.reshape(height, width)
    if channels > 1 and row.size == channels * height * width:
        raise PredictError(_either_order(f"{name}: a flat row of {row.size} values", trained))
    raise PredictError(
        f"{name}: a flat row of {row.size} values, but this run's images are {height} x {width} "
        f"({height * width} values a row); give rows of {height * width} values, or images (N, H, W)"
    )


def _either_order(what: str, trained: Trained) -> str:
    """The refusal of colour images as flat rows: channels last (an .npz x flattened) or first
    (CIFAR's own files) hold the same number of values, and nothing in a row says which."""
    channels, height, width = image_shape(trained)
    return (
        f"{what} reads as {height} x {width} images of {channels} channels, flattened channels last "
        f"or channels first; say which: x.reshape(-1, {height}, {width}, {channels}) or "
        f"x.reshape(-1, {channels}, {height}, {width})"
    )


def array_size(item: Any) -> tuple[int, int] | None:
    """The (height, width) of one image given as an array or tensor ``(H, W)`` or ``(H, W, C)``;
    None for anything else (a file, a Pillow image, a flat row)."""
    if isinstance(item, (np.ndarray, Tensor)) and item.ndim in (2, 3):
        return int(item.shape[0]), int(item.shape[1])
    return None


def resize_note(sizes: Counter[tuple[int, int]], count: int, trained: Trained) -> str | None:
    """One line when image arrays of another size than the run's (``sizes``: how many of each) were
    resized to it, among ``count`` inputs; None when none was. Arrays only: image files are resized
    as a folder's are in training, but an array of another size is most often another data set's."""
    if not sizes:
        return None
    _, height, width = image_shape(trained)
    if len(sizes) == 1:
        seen = "{} x {}".format(*next(iter(sizes)))
    else:
        seen = ", ".join(f"{h} x {w} ({n})" for (h, w), n in sizes.most_common(3))
        seen += ", ..." if len(sizes) > 3 else ""
    return (
        f"warning: {sum(sizes.values())} of {count} input image(s) were arrays of {seen}, not the run's "
        f"{height} x {width}, and were resized to it (as training resizes): the network predicts as "
        "confidently on images of another kind, so check that these are the kind it trained on"
    )


def image_batch(items: Any, trained: Trained, names: Sequence[str] | None = None) -> Tensor:
    """``items`` as a batch of images ``(N, C, H, W)``: a ready batch of the run's shape (a float
    tensor in [0, 1] or uint8) as it is, else uint8 decoded from each source (a file's path,
    encoded bytes, a Pillow image, an array (H, W) or (H, W, C), a flat row of H * W values) of
    :func:`image_items`."""
    channels, height, width = image_shape(trained)
    items = image_items(items, trained)
    if isinstance(items, Tensor):
        return items if items.dtype == torch.uint8 else items.float()
    names = names or [f"input {i + 1}" for i in range(len(items))]
    decoded = []
    for item, name in zip(items, names):
        if isinstance(item, Tensor):
            item = item.numpy()
        if isinstance(item, np.ndarray) and item.ndim == 1 and item.dtype.kind in "biuf":
            item = flat_image(item, trained, name)
        if isinstance(item, str) and not _looks_like_a_file(item):
            raise PredictError(f"{name}: {item[:40]!r} is text, but this run reads images")
        try:
            decoded.append(decode_image(item, channels, (height, width), name))
        except PixelRangeError as error:
            raise PredictError(f"{name}: {error.problem}; {scale_advice(trained)}") from None
        except DataError as error:
            raise PredictError(f"{error} (this run reads images of {channels} channel(s))") from None
    return torch.from_numpy(np.stack(decoded)) if decoded else torch.zeros((0, channels, height, width))


def training_scale(trained: Trained) -> str:
    """How the run made its training images, from its record ("the run's training images were
    stored as 0..16 and divided by 16 (...)"); empty for a run that recorded nothing."""
    record = trained.inputs
    if not {"low", "high", "mean", "pixel_scale"} <= set(record):
        return ""
    scale = record["pixel_scale"]
    return (
        f"the run's training images were stored as 0..{scale:g} and divided by {scale:g} (the network read "
        f"{record['low']:.3g}..{record['high']:.3g}, mean {record['mean']:.3g})"
    )


def scale_advice(trained: Trained) -> str:
    """What to do with images out of their type's range: make them as the run made its own."""
    made = training_scale(trained)
    if not made:
        return "divide by the largest value your pixels can hold (255 for 8-bit images) or store uint8"
    scale = trained.inputs["pixel_scale"]
    if scale == 255:
        return f"{made}: store uint8 0..255, or floats divided by 255"
    return f"{made}: divide yours by {scale:g} (floats in [0, 1]), as it did"


#: How far from the training images' a new batch's largest value or mean may lie (a factor) before
#: predict warns: a scale of 16 against 255 is a factor of 16; natural variation stays well within.
FAR = 3.0


def range_note(low: float, high: float, mean: float, trained: Trained, source: str) -> str | None:
    """One line when new inputs (as the network reads them) lie far from the training images'
    range or mean, saying both and how the run made its own; None when they are near, or the run
    recorded nothing."""
    made = training_scale(trained)
    if not made:
        return None
    record = trained.inputs

    def far(new: float, old: float) -> bool:
        return old > 0 and not (old / FAR <= new <= old * FAR)

    if not (far(high, record["high"]) or far(mean, record["mean"])):
        return None
    return (
        f"warning: {source}: the network reads these inputs as {low:.3g}..{high:.3g}, mean {mean:.3g}, "
        f"far from what it trained on: {made}; scale yours as they were, or expect wrong predictions"
    )


def tokens_note(mean_tokens: float, trained: Trained, source: str) -> str | None:
    """One line when new texts hold on average more than a factor :data:`FAR` more or fewer tokens
    (as the run's tokenizer and cut make them) than its training texts; None when near, or unknown."""
    trained_mean = trained.inputs.get("mean_tokens")
    if not trained_mean or trained_mean / FAR <= mean_tokens <= trained_mean * FAR:
        return None
    return (
        f"warning: {source}: these texts hold {mean_tokens:.3g} tokens on average as the run reads them, "
        f"its training texts {trained_mean:.3g}: predictions on texts of another kind are not to be trusted"
    )


def _looks_like_a_file(text: str) -> bool:
    return "\n" not in text and len(text) < 4096 and "." in text.rsplit("/", 1)[-1]


def text_split(texts: Sequence[Any], trained: Trained, names: Sequence[str] | None = None) -> TextClassSplit:
    """``texts`` as the ids the run's network reads, padded, with their lengths (labels all 0)."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            name = names[i] if names else f"input {i + 1}"
            raise PredictError(f"{name}: a {type(text).__name__}, not a text; this run reads texts")
    config = trained.config
    options = config.section(TextOptions)
    encoder = model_text_encoder(config.model.name, config.options("model"))
    if encoder is not None:
        tokenizer = load_tokenizer(encoder)
        limit = encoder_length(encoder, tokenizer, options.max_text_tokens)
        ids, _ = encoder_ids(tokenizer, list(texts), limit)
        pad = int(tokenizer.pad_token_id)
    else:
        if trained.vocabulary is None:
            raise PredictError(f"{trained.origin} has no vocabulary file: its texts' ids cannot be made")
        vocabulary = Vocabulary(trained.vocabulary)
        tokenize = TOKENIZERS[options.tokenizer or "words"]
        ids = [vocabulary.encode(tokenize(text)[: options.max_text_tokens]) for text in texts]
        pad = vocabulary.index[PAD]
    padded, lengths = padded_ids(ids, pad)
    return TextClassSplit(padded, torch.zeros(len(ids), dtype=torch.int64), lengths)
