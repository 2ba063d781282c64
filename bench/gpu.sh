#!/usr/bin/env bash
# labelemb's GPU suite: one short pass on a CUDA machine, every figure the GPU issues ask for, as
# JSON and logs under $OUT (default /tmp/gpu-out). From the repository's root, with labelemb and
# its dependencies importable and LABELEMB_DATA holding mnist/:
#
#   LABELEMB_DATA=DATA_DIR bash bench/gpu.sh          # every part
#   LABELEMB_DATA=DATA_DIR bash bench/gpu.sh step     # the training step (issue 67) only
#   LABELEMB_DATA=DATA_DIR bash bench/gpu.sh vocab    # the vocabulary head and the text step (issue 68) only
#   LABELEMB_DATA=DATA_DIR bash bench/gpu.sh text     # the tfidf text model, the wrong-label list (issue 103)
#
# Each step has its own time limit, so that one that hangs costs only itself. The parts run apart
# where one command may run only so long (each is meant to fit 10 minutes); none has been timed on
# a GPU yet. The figures go into docs/benchmarks.md with the GPU, torch and date.
#
# On a lent GPU machine that lacks some of labelemb's dependencies, put their wheels in .gpu/wheels
# (for its Python: pydantic and its parts, pytest and its parts) and the data in .gpu/data: this
# script installs the wheels beside the checkout and reads the data from there. The text part also
# needs debian-sections/ and fashion-mnist/ beside mnist/ in the data, and the wheels of datasets,
# dill and multiprocess (data.files reads CSV through them) and of cleanlab and termcolor
# (label-issues); a step whose needs are missing says which and is skipped.
set -u
PART=${1:-all}
case "$PART" in all|step|vocab|text) ;; *) echo "bench/gpu.sh: unknown part '$PART': all, step, vocab or text"; exit 2 ;; esac
want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
# Before anything is installed: every step here measures CUDA, so a machine without it stops at once.
python3 -c "import sys, torch; torch.cuda.is_available() or sys.exit(
  f'bench/gpu.sh: no CUDA device here (torch {torch.__version__} sees none): run it on a GPU machine')" || exit 1
if [ -d .gpu/wheels ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/src
fi
if [ -z "${LABELEMB_DATA:-}" ] && [ -d .gpu/data ]; then export LABELEMB_DATA=$PWD/.gpu/data; fi
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
step() { echo "[t+$(( $(date +%s) - T0 ))s] $*"; }
# Which of the named needs this machine lacks: data folders (ending in /, under LABELEMB_DATA) and
# Python modules; Fashion-MNIST may also be where Debian's dataset-fashion-mnist puts it.
lacking() {
  for need in "$@"; do
    case "$need" in
      fashion-mnist/) [ -d "${LABELEMB_DATA:-}/$need" ] || [ -d /usr/share/datasets/fashion-mnist ] || printf ' %s' "$need" ;;
      */) [ -d "${LABELEMB_DATA:-}/$need" ] || printf ' %s' "$need" ;;
      *) python3 -c "import $need" 2>/dev/null || printf ' %s' "$need" ;;
    esac
  done
}
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null
python3 -c "import torch, labelemb; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1

if want step; then
step "no host read in a step, on CUDA (the tests' CUDA cases)"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/training/test_host_reads.py tests/training/test_graphs.py \
  > "$OUT/host-reads.log" 2>&1; tail -3 "$OUT/host-reads.log"

step "kernels and host syncs per MNIST-MLP step (eager, fused head, CUDA graphs)"
(cd bench && timeout 120 python3 step_kernels.py --device cuda --json "$OUT/step-kernels.json" --methods onehot \
  label_embedding label_embedding:fast_path=fused onehot:train.cuda_graphs=true \
  label_embedding:fast_path=fused,train.cuda_graphs=true) 2>&1 | grep -v USDT

step "label_embedding / onehot per step: MLP, CNN, ResNet-8, eager and fused"
timeout 150 python3 bench/overhead.py --device cuda --models mlp cnn resnet8 --rounds 5 --json "$OUT/overhead.json" \
  --methods onehot label_embedding label_embedding:fast_path=fused 2>&1 | tail -10

step "CUDA graphs: the MNIST-MLP step"
timeout 120 python3 bench/overhead.py --device cuda --models mlp --rounds 5 --json "$OUT/graphs.json" \
  --methods onehot onehot:train.cuda_graphs=true label_embedding:train.cuda_graphs=true \
  label_embedding:fast_path=fused,train.cuda_graphs=true 2>&1 | tail -5

step "what train.deterministic costs (deterministic false against the default)"
timeout 120 python3 bench/overhead.py --device cuda --models mlp cnn resnet8 --rounds 3 --deterministic false \
  --json "$OUT/overhead-nondeterministic.json" --methods onehot label_embedding 2>&1 | tail -7

step "batched seeds against the sequential trainer"
timeout 90 python3 bench/seeds.py --device cuda --seeds 20 --rounds 3 --json "$OUT/seeds.json" 2>&1 | tail -6

step "the same seed trained twice on the GPU: summary.json figures equal"
for run in a b; do
  timeout 60 python3 -m labelemb train --config configs/mnist-mlp.yaml --method label_embedding --seed 0 \
    --device cuda --output-dir "/tmp/same-seed-$run" --no-progress train.epochs=2 > "$OUT/same-seed-$run.log" 2>&1
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
found = [sorted(pathlib.Path(f"/tmp/same-seed-{r}").rglob("summary.json")) for r in "ab"]
keys = ("selected_test_error", "final_test_error", "selected_dev_error")
pairs = [{k: json.loads(p.read_text()).get(k) for k in keys} for p in (found[0][0], found[1][0])] if all(found) else []
same = bool(pairs) and pairs[0] == pairs[1]
print("same seed twice:", pairs, "identical" if same else "DIFFERENT")
json.dump({"runs": pairs, "identical": same}, open(pathlib.Path(sys.argv[1]) / "same-seed.json", "w"))
PY
step "8 seeds of the MNIST MLP (3 epochs) at 1 and 8 runs per device: time, and the same figures"
for K in 1 8; do
  start=$(date +%s)
  timeout 110 python3 -m labelemb compare --config configs/mnist-mlp.yaml --methods label_embedding --seeds 0-7 \
    --device cuda --runs-per-device $K --output-dir "/tmp/grid-$K" --no-progress train.epochs=3 > "$OUT/grid-$K.log" 2>&1
  echo "K=$K rc $? wall $(( $(date +%s) - start )) s" | tee -a "$OUT/grid.txt"
done
python3 - "$OUT" <<'PY'
import json, pathlib, sys
def figures(k):
    return {str(p.parent.relative_to(f"/tmp/grid-{k}")): json.loads(p.read_text()).get("selected_test_error")
            for p in sorted(pathlib.Path(f"/tmp/grid-{k}").rglob("summary.json"))}
one, eight = figures(1), figures(8)
print("K = 1 and K = 8 give", "the same figures" if one and one == eight else f"DIFFERENT figures: {one} {eight}")
json.dump({"K1": one, "K8": eight, "identical": bool(one) and one == eight}, open(pathlib.Path(sys.argv[1]) / "grid-figures.json", "w"))
PY
fi

if want vocab; then
step "the vocabulary head: labelemb's chunked heads against plain CE, torch's and Liger's fused CE"
for size in "8192 50000" "16384 128000"; do
  set -- $size
  for dtype in bfloat16 float32; do
    timeout 150 python3 bench/vocab.py --device cuda --dtype $dtype --tokens $1 --vocab $2 --dims 64 \
      --rounds 3 --json "$OUT/vocab-$1-$2-$dtype.json" 2>&1 | tail -2
  done
done

step "the en-it sequence-to-sequence step: label_embedding / onehot against the counted FLOPs"
if [ -d "${LABELEMB_DATA:-}/debian-ddtp" ]; then
  timeout 120 python3 bench/seq2seq_step.py --device cuda --configs configs/ddtp-en-it.yaml --batches 20 --rounds 3 \
    --data-dir "$LABELEMB_DATA" --json "$OUT/seq2seq.json" 2>&1 | tail -3
else
  echo "skipped: LABELEMB_DATA has no debian-ddtp/ (copy it beside mnist/ to measure the text step)"
fi

fi

if want text; then
step "one epoch of the strong text model (tfidf, learned projection) on debian-sections: onehot and label_embedding, 5 seeds side by side"
missing=$(lacking debian-sections/ datasets)
if [ -z "$missing" ]; then
  timeout 210 python3 bench/text_tfidf.py --device cuda --seeds 5 --epochs 1 --json "$OUT/text-tfidf.json" 2>&1 | tail -4
else
  echo "skipped: this machine lacks$missing (put debian-sections/ in the data, the wheels of datasets, dill, multiprocess in .gpu/wheels)"
fi

step "the 5-fold cross-fitted wrong-label list, Fashion-MNIST with 40 % flipped, against 5 seeds side by side"
missing=$(lacking fashion-mnist/ mnist/ cleanlab)
if [ -z "$missing" ]; then
  timeout 350 python3 bench/label_issues_cost.py --device cuda --folds 5 --seeds 5 --json "$OUT/label-issues.json" 2>&1 | tail -4
else
  echo "skipped: this machine lacks$missing (put fashion-mnist/ and mnist/ in the data, the wheels of cleanlab, termcolor in .gpu/wheels)"
fi
fi
step done
