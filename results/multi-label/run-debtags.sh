#!/usr/bin/env bash
# The multi-label comparison on debian-debtags: every method that trains on tag sets x 5 seeds, on
# a bag of words; label smoothing's mass-preserving form as an experiment of its own (its option,
# tag_smoothing, names no method). Each compare resumes where it stopped. Run from the repository
# root with LABELEMB_DATA pointing at the folder that holds debian-debtags/.
set -euo pipefail
: "${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding debian-debtags/}"
METHODS=${METHODS:-onehot,label_smoothing,focal,asl,label_embedding}
labelemb compare --config configs/debian-debtags.yaml --seeds 0-4 --batched --no-progress --methods "$METHODS"
labelemb compare --config configs/debian-debtags.yaml --seeds 0-4 --batched --no-progress \
  --methods label_smoothing tag_smoothing=mass experiment=debian-debtags-ls-mass
# The tag embedding tuned for tag sets (docs/multi-label.md): 20 trials on seed 0, then the default
# and the best setting on seeds 1-5; the study resumes from runs/debian-debtags-tuned/tuning/.
labelemb tune --config configs/debian-debtags.yaml --methods onehot,label_embedding --trials 20 \
  --space beta=0.0:1.0 --seeds 1-5 --batched --batched-trials 4 --no-progress experiment=debian-debtags-tuned
