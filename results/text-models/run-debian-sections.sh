#!/usr/bin/env bash
# Issue 100's verdicts on the strong text model: every method that serves single-label texts x 5
# seeds on debian-sections, read through the learned TF-IDF projection
# (configs/debian-sections-tfidf.yaml), the linear reference (scikit-learn's SVM and logistic
# regression on the same TF-IDF) beside them. The compare resumes where it stopped (a killed run
# from its checkpoint). Run from the repository root with LABELEMB_DATA pointing at the folder
# that holds debian-sections/.
set -euo pipefail
: "${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding debian-sections/}"
METHODS=${METHODS:-onehot,label_smoothing,confidence_penalty,label_embedding}
labelemb compare --config configs/debian-sections-tfidf.yaml --seeds 0-4 --batched --no-progress \
  --methods "$METHODS"
