#!/usr/bin/env bash
# Keep the records of issue 78's finished runs here, so that a later session (a fresh checkout)
# resumes without training them again and can rebuild every table: for each experiment folder
# under runs/ given (default: every noisy-label one), the comparison's files and a records.tar.xz
# of each finished run's small files (no weights, no checkpoint). `restore.sh` puts them back.
set -euo pipefail
HERE=$(dirname "$0")
SMALL="config.yaml start.json summary.json metrics.jsonl evaluation.json shift.json label_noise.safetensors label_representation.safetensors"
experiments=${*:-$(cd runs && ls -d fashion-mnist-mlp-noise-* mnist-mlp-noise-* noisyag-news* 2>/dev/null || true)}
for experiment in $experiments; do
  [ -d "runs/$experiment" ] || continue
  files=()
  for summary in runs/"$experiment"/*/seed*/summary.json; do
    [ -f "$summary" ] || continue
    run=$(dirname "$summary")
    for name in $SMALL; do
      [ -f "$run/$name" ] && files+=("${run#runs/}/$name")
    done
  done
  [ ${#files[@]} -gt 0 ] || continue
  mkdir -p "$HERE/$experiment"
  tar -C runs -cJf "$HERE/$experiment/records.tar.xz" --sort=name --mtime=2026-01-01 --owner=0 --group=0 "${files[@]}"
  for name in comparison.md comparison.csv curves.png memorisation.png ranks.png; do
    if [ -f "runs/$experiment/$name" ]; then cp "runs/$experiment/$name" "$HERE/$experiment/"; fi
  done
  echo "kept $(ls -d runs/"$experiment"/*/seed*/summary.json | wc -l) finished run(s) of $experiment"
done
