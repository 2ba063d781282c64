#!/usr/bin/env bash
# Issue 78's NoisyAG-News comparisons: three methods on bag of words, every method on frozen
# all-MiniLM-L6-v2 features; each `compare` resumes where it stopped. Run from the repository
# root with LABELEMB_DATA pointing at the data folder holding noisy-labels/.
set -euo pipefail
: "${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding noisy-labels/}"
labelemb compare --config configs/noisyag-news.yaml --seeds 0-4 --batched --no-progress \
  --methods onehot,label_smoothing,label_embedding
ALL=$(python -c "import labelemb.methods as m; print(','.join(['onehot'] + [n for n in m.available() if n != 'onehot']))")
labelemb compare --config configs/noisyag-news-minilm.yaml --seeds 0-4 --batched --no-progress --methods "${METHODS:-$ALL}"
