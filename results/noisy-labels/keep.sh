#!/usr/bin/env bash
# Keep the records of issue 78's finished runs (../keep.sh): the experiments given, or every
# noisy-label one under runs/.
set -euo pipefail
experiments=${*:-$(cd runs && ls -d fashion-mnist-mlp-noise-* mnist-mlp-noise-* noisyag-news* 2>/dev/null || true)}
# shellcheck disable=SC2086 # one experiment a word
exec bash "$(dirname "$0")/../keep.sh" noisy-labels $experiments
