"""The linear line to beat on debian-debtags: TF-IDF of words and word pairs (50,000 features), a
linear SVM per tag (C 0.5), judged by labelemb's multi-label figures on all test packages and on
the rest (those carrying a tag beyond the three library tags).

    LABELEMB_DATA=DATA_DIR python results/multi-label/linear_baseline.py \
        > results/multi-label/linear-baseline.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from labelemb.metrics.figures import in_units
from labelemb.metrics.multi_label import tag_figures

LIBRARY_TAGS = {"devel::library", "role::shared-lib", "role::devel-lib"}


def main() -> None:
    folder = Path(os.environ.get("LABELEMB_DATA", "data")) / "debian-debtags"
    missing = [name for name in ("train.csv.gz", "test.csv.gz") if not (folder / name).is_file()]
    if missing:
        sys.exit(f"{folder}: missing {', '.join(missing)} (set LABELEMB_DATA to the data folder)")
    train, test = (pd.read_csv(folder / f"{split}.csv.gz") for split in ("train", "test"))
    binarizer = MultiLabelBinarizer()
    train_tags = binarizer.fit_transform(train.tags.str.split())
    test_tags = binarizer.transform(test.tags.str.split()).astype(bool)
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, sublinear_tf=True)
    classifier = OneVsRestClassifier(LinearSVC(C=0.5)).fit(vectorizer.fit_transform(train.text), train_tags)
    seconds = time.perf_counter() - started
    # The SVM's decision function ranks; a tag is predicted where it is positive.
    scores = classifier.decision_function(vectorizer.transform(test.text))
    rest = np.array([not set(tags.split()) <= LIBRARY_TAGS for tags in test.tags])
    record = {
        "method": "tfidf_linear_svm",
        "fit_seconds": round(seconds, 1),
        "test": in_units({f"test_{k}": v for k, v in tag_figures(scores, test_tags, 0.0).items()}),
        "test_rest": in_units(
            {f"test_rest_{k}": v for k, v in tag_figures(scores[rest], test_tags[rest], 0.0).items()}
        ),
        "rest_rows": int(rest.sum()),
    }
    json.dump(record, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
