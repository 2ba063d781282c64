#!/usr/bin/env bash
# Issue 78's MNIST MLP comparisons: right labels and Wei & Liu's six fixed noisy-label settings,
# every run also ranking cleanlab's 100 disputed test labels; each `compare` resumes where it
# stopped. Run from the repository root with LABELEMB_DATA pointing at the folder holding
# noisy-labels/. METHODS and SETTINGS may be given in the environment to run a part.
set -euo pipefail
DATA=${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding noisy-labels/}
METHODS=${METHODS:-onehot,label_smoothing,nls,label_embedding,gce,sce,elr,coteaching,forward_t}
SETTINGS=${SETTINGS:-clean sparse-low uniform-low random-low sparse-high uniform-high random-high}
for setting in $SETTINGS; do
  # The right labels tell Co-teaching their noise rate, 0, as its forget rate (a run on them knows
  # no noise to take it from); each noisy setting's runs are told their own rate.
  noise="forget_rate=0"
  if [ "$setting" != clean ]; then
    noise="noise.kind=file noise.labels=$DATA/noisy-labels/wei-liu-2021/mnist-$setting.npy"
  fi
  # shellcheck disable=SC2086
  labelemb compare --config configs/mnist-mlp.yaml --seeds 0-4 --batched --no-progress --methods "$METHODS" \
    $noise "ood=[]" "shift=[]" disputed_test_labels=noisy-labels/mnist-test-errors/mturk.json \
    experiment=mnist-mlp-noise-$setting ||
    echo "compare of $setting: not every run was judged (restored runs keep no weights); going on"
done
