"""The frame NoisyAG-News's results are read in: a linear SVM on TF-IDF features (words and word
pairs, C = 0.5; scikit-learn), trained on the crowd's labels and on the true ones, judged on the
clean test split. The gap between the two is what the crowd's noise costs a standard text
classifier.

    LABELEMB_DATA=../shared/data python results/noisy-labels/svm_frame.py
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC


def read(path: Path) -> tuple[list[str], list[int], list[int]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [int(r["label"]) for r in rows], [int(r["clean_label"]) for r in rows]


def main() -> None:
    folder = Path(os.environ["LABELEMB_DATA"]) / "noisy-labels" / "noisyag-news"
    texts, crowd, true = read(folder / "train.csv.gz")
    test_texts, _, test_true = read(folder / "test.csv.gz")
    features = TfidfVectorizer(ngram_range=(1, 2))
    train_x = features.fit_transform(texts)
    test_x = features.transform(test_texts)
    for name, labels in (("crowd's labels", crowd), ("true labels", true)):
        predicted = LinearSVC(C=0.5).fit(train_x, labels).predict(test_x)
        error = 100.0 * sum(p != t for p, t in zip(predicted, test_true)) / len(test_true)
        print(f"linear SVM on TF-IDF, trained on the {name}: clean-test error {error:.2f} %")


if __name__ == "__main__":
    main()
