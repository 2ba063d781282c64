"""The linear reference of a text comparison (issue 100): a linear SVM and logistic regression on
TF-IDF, fitted by scikit-learn on the splits the runs read, judged by the runs' figures."""

from __future__ import annotations

import numpy as np

from labelemb.data import DataRequest, load
from labelemb.data.files.options import FilesOptions
from labelemb.data.text.options import TextOptions

#: Each class's own words: a linear model on TF-IDF tells them apart.
WORDS = {
    "food": ["bread", "soup", "pasta", "rice", "bake"],
    "music": ["band", "song", "piano", "album", "singer"],
    "sport": ["team", "goal", "match", "coach", "player"],
}


def write_texts(path, rows: int, seed: int) -> None:
    """A CSV (text, label) of ``rows`` texts: two of their class's words among shared ones."""
    rng = np.random.default_rng(seed)
    names = sorted(WORDS)
    lines = ["text,label"]
    for i in range(rows):
        label = names[i % len(names)]
        words = [*rng.choice(WORDS[label], 2), *rng.choice(["the", "a", "new", "old", "and"], 3)]
        lines.append(f"{' '.join(rng.permutation(words))} {i},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_text_data_set_keeps_each_splits_texts_whole_and_in_its_order(tmp_path):
    write_texts(tmp_path / "train.csv", 60, 0)
    write_texts(tmp_path / "test.csv", 12, 1)
    files = FilesOptions(format="csv", train="train.csv", test="test.csv", dev_fraction=0.2)
    text = TextOptions(tokenizer="words", max_text_tokens=2)
    request = DataRequest(dir=str(tmp_path), sections={"files": files, "text": text}, progress=False)
    dataset = load("files", request)
    # dev was carved from train; every split's texts line up with its labels, whole though the
    # model reads the first two tokens only.
    counts = {split: len(texts) for split, texts in dataset.texts.items()}
    assert counts == {"train": 48, "dev": 12, "test": 12}
    for split in ("train", "dev", "test"):
        labels = getattr(dataset, split).labels.tolist()
        for text, label in zip(dataset.texts[split], labels):
            assert any(word in text.split() for word in WORDS[dataset.class_names[label]])
            assert len(text.split()) == 6
