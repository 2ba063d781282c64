#!/usr/bin/env bash
# Put the records kept by keep.sh in results/FOLDER back under runs/: a comparison command then
# skips those runs and `labelemb compare --summarize runs/EXPERIMENT` rebuilds the tables from
# them. A run folder that exists already is left as it is. Run from the repository root:
#
#   bash results/restore.sh FOLDER
set -euo pipefail
HERE=$(dirname "$0")
FOLDER=${1:?name the folder under results/ whose records to restore}
mkdir -p runs
for archive in "$HERE/$FOLDER"/*/records.tar.xz; do
  [ -f "$archive" ] || continue
  tar -C runs -xJf "$archive" --skip-old-files
  echo "restored $(tar -tJf "$archive" | grep -c summary.json) run(s) of $(basename "$(dirname "$archive")")"
done
