#!/usr/bin/env bash
# Issue 78's NoisyAG-News comparisons: three methods on bag of words, every method on frozen
# all-MiniLM-L6-v2 features; each `compare` resumes where it stopped. Run from the repository
# root with LABELEMB_DATA pointing at the data folder holding noisy-labels/.
set -euo pipefail
: "${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding noisy-labels/}"
labelemb compare --config configs/noisyag-news.yaml --seeds 0-4 --batched --no-progress \
  --methods onehot,label_smoothing,label_embedding || echo "compare: not every run was judged; going on"
# label_embedding_fixed needs a fixed embedding file of its own, asl trains tag sets only: not these.
ALL=$(python -c "import labelemb.methods as m; print(','.join(['onehot'] + [n for n in m.available() if n not in ('onehot', 'label_embedding_fixed', 'asl')]))")
labelemb compare --config configs/noisyag-news-minilm.yaml --seeds 0-4 --batched --no-progress --methods "${METHODS:-$ALL}" ||
  echo "compare: not every run was judged (restored runs keep no weights); going on"
# The frame: onehot trained on the true labels (the clean_label column read as the label), dev
# carved from train by the same rule, for what the crowd's noise costs.
for config in noisyag-news noisyag-news-minilm; do
  labelemb compare --config configs/$config.yaml --seeds 0-4 --batched --no-progress --methods onehot \
    data.files.label_column=clean_label data.files.clean_label_column=null experiment=$config-clean-labels
done
