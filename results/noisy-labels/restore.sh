#!/usr/bin/env bash
# Put the kept records of issue 78's finished runs back under runs/ (see keep.sh): a comparison
# command then skips those runs and `labelemb compare --summarize runs/EXPERIMENT` rebuilds the
# tables from them. A run folder that exists already is left as it is.
set -euo pipefail
HERE=$(dirname "$0")
mkdir -p runs
for archive in "$HERE"/*/records.tar.xz; do
  [ -f "$archive" ] || continue
  tar -C runs -xJf "$archive" --skip-old-files
  echo "restored $(tar -tJf "$archive" | grep -c summary.json) run(s) of $(basename "$(dirname "$archive")")"
done
