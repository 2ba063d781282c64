#!/usr/bin/env bash
# Keep the records of finished runs in the repository, so that a later session (a fresh checkout)
# resumes without training them again and can rebuild every table:
#
#   bash results/keep.sh FOLDER EXPERIMENT...
#
# For each experiment folder under runs/ given, the comparison's (or a tune's) files and a
# records.tar.xz of each finished run's small files (no weights, no checkpoint) go to
# results/FOLDER/EXPERIMENT/. A tune's trials (tuning/trialNNN/METHOD/seed*) and tuned runs
# (tuned/trialNNN/METHOD/seed*) are kept with its study, so that it resumes without training them.
# `restore.sh FOLDER` puts them back. Run from the repository root.
set -euo pipefail
HERE=$(dirname "$0")
FOLDER=${1:?name the folder under results/ to keep the records in}
shift
SMALL="config.yaml start.json summary.json metrics.jsonl evaluation.json shift.json label_noise.safetensors label_representation.safetensors"
shopt -s nullglob
for experiment in "$@"; do
  [ -d "runs/$experiment" ] || continue
  files=()
  for summary in runs/"$experiment"/*/seed*/summary.json runs/"$experiment"/*/*/*/seed*/summary.json; do
    run=$(dirname "$summary")
    for name in $SMALL; do
      # A tuning trial's learned representation is no table's (a quarter megabyte a trial at 233 tags).
      case "$run/$name" in */tuning/trial*/label_representation.safetensors) continue ;; esac
      [ -f "$run/$name" ] && files+=("${run#runs/}/$name")
    done
  done
  [ ${#files[@]} -gt 0 ] || continue
  # A run trained, wholly or in part, by uncommitted code (a `.dirty` build) has numbers no commit
  # records: train it again at a commit before keeping it.
  records=$(printf 'runs/%s\n' "${files[@]}" | grep -E '/(summary|evaluation|shift)\.json$')
  # shellcheck disable=SC2086 # one path a word
  dirty=$(grep -l '"labelemb": "[^"]*\.dirty"' $records 2>/dev/null || true)
  if [ -n "$dirty" ]; then
    echo "not keeping $experiment: trained by uncommitted code (a .dirty build):" $dirty >&2
    exit 1
  fi
  mkdir -p "$HERE/$FOLDER/$experiment"
  [ -f "runs/$experiment/tuning/study.journal" ] && files+=("$experiment/tuning/study.journal")
  # A text comparison's linear reference (minutes to fit), read back while its key still fits.
  [ -f "runs/$experiment/reference.json" ] && files+=("$experiment/reference.json")
  tar -C runs -cJf "$HERE/$FOLDER/$experiment/records.tar.xz" --sort=name --mtime=2026-01-01 --owner=0 --group=0 "${files[@]}"
  for name in comparison.md comparison.csv curves.png memorisation.png ranks.png tuning.md tuning.json tuning-history.png; do
    if [ -f "runs/$experiment/$name" ]; then cp "runs/$experiment/$name" "$HERE/$FOLDER/$experiment/"; fi
  done
  echo "kept $(printf '%s\n' "${files[@]}" | grep -c '/summary\.json$') finished run(s) of $experiment"
done
