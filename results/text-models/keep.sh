#!/usr/bin/env bash
# Keep the records of issue 100's finished runs on the strong text model (../keep.sh): the
# experiments given, or every *-tfidf one under runs/.
set -euo pipefail
experiments=${*:-$(cd runs && ls -d ./*-tfidf 2>/dev/null | sed 's|^\./||' || true)}
# shellcheck disable=SC2086 # one experiment a word
exec bash "$(dirname "$0")/../keep.sh" text-models $experiments
