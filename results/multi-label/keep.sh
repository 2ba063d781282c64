#!/usr/bin/env bash
# Keep the records of issue 81's finished runs (../keep.sh): the experiments given, or every
# debian-debtags one under runs/.
set -euo pipefail
experiments=${*:-$(cd runs && ls -d debian-debtags* 2>/dev/null || true)}
# shellcheck disable=SC2086 # one experiment a word
exec bash "$(dirname "$0")/../keep.sh" multi-label $experiments
