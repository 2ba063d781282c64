#!/usr/bin/env bash
# Issue 78's Fashion-MNIST MLP noisy-label comparisons, one setting after another; each
# `compare` resumes where it stopped (finished runs are not trained again). Run from the
# repository root with LABELEMB_DATA pointing at the data folder holding noisy-labels/.
# METHODS and SETTINGS may be given in the environment to run a part.
set -euo pipefail
DATA=${LABELEMB_DATA:?set LABELEMB_DATA to the folder holding noisy-labels/}
WEI=$DATA/noisy-labels/wei-liu-2021
run_pass() {
  local methods=$1 settings=$2
  for setting in $settings; do
    # The right labels keep the config's ood: and shift: (the rank picture's clean criteria) and
    # tell Co-teaching their noise rate, 0, as its forget rate; the noisy settings are judged on
    # their clean test error, so they skip ood: and shift:, and each tells its runs its own rate.
    judged="ood=[] shift=[]"
    case $setting in
      clean) noise="forget_rate=0" judged="" ;;
      symmetric20) noise="noise.kind=symmetric noise.rate=0.2" ;;
      symmetric50) noise="noise.kind=symmetric noise.rate=0.5" ;;
      pairflip45) noise="noise.kind=pairflip noise.rate=0.45" ;;
      *) noise="noise.kind=file noise.labels=$WEI/fashion-mnist-$setting.npy" ;;
    esac
    # shellcheck disable=SC2086
    labelemb compare --config configs/fashion-mnist-mlp.yaml --seeds 0-4 --batched --no-progress \
      --methods "$methods" $noise $judged experiment=fashion-mnist-mlp-noise-$setting ||
      echo "compare of $setting: not every run was judged (restored runs keep no weights); going on"
  done
}

# Two passes: twelve methods over every setting first (the label methods and the robust peers),
# then the rest of the methods over the noisy settings (label_embedding_fixed needs an embedding
# file of its own, asl trains tag sets only: not these).
FIRST=onehot,label_smoothing,nls,label_embedding,ols,lwr,gce,sce,nce_rce,elr,coteaching,forward_t
ALL=$(python -c "import labelemb.methods as m; print(','.join(['onehot'] + [n for n in m.available() if n not in ('onehot', 'label_embedding_fixed', 'asl')]))")
NOISY="pairflip45 symmetric50 symmetric20 sparse-low uniform-low random-high"
PASSES=${METHODS:+custom}
for pass in ${PASSES:-first rest}; do
  case $pass in
    first) methods=$FIRST settings=${SETTINGS:-clean $NOISY} ;;
    rest) methods=$ALL settings=${SETTINGS:-$NOISY} ;;
    custom) methods=$METHODS settings=${SETTINGS:-clean $NOISY} ;;
  esac
  run_pass "$methods" "$settings"
done
