#!/usr/bin/env bash
# Training throughput of the MNIST MLP (784-256-128-10, batch 64 per worker): Tessera
# (parameter servers, bsp) with 1, 2 and 4 workers and 1 and 2 servers, against PyTorch
# DistributedDataParallel over gloo with the same number of processes, layers, batch and
# optimizer (bench/train/torch_ddp.py), in the same run. Prints a markdown table
# (docs/benchmarks-train.md) with the ratio and where Tessera's worker time went.
#
# Usage: bench/train/run.sh [--build DIR] [--steps N] [--optimizer sgd|adam]
#                           [--workers "1 2 4"] [--servers "1 2"] [--repeats R]
#                           [--out DIR] [-- extra tessera train flags]
# Each cell is the best of R runs (default 1). Run from the repository root.
set -euo pipefail

BUILD=build
STEPS=300
OPT=sgd
LR=0.01
WORKERS="1 2 4"
SERVERS="1 2"
REPEATS=1
OUT=""
EXTRA=()
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --optimizer) OPT=$2; shift 2 ;;
    --lr) LR=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --servers) SERVERS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

TESSERA="$BUILD/launch/tessera"
PY=/usr/bin/python3  # Debian's python3 carries python3-torch
[[ -x "$TESSERA" ]] || { echo "run.sh: $TESSERA not built (cmake --build $BUILD)" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "run.sh: $PY cannot import torch (scripts/setup.sh --with-torch)" >&2; exit 2; }
[[ -n "$OUT" ]] || OUT=$(mktemp -d /tmp/tessera-bench-train.XXXXXX)
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"

echo "# machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# results: $RESULTS" >&2

for W in $WORKERS; do
  for S in $SERVERS; do
    for ((r = 1; r <= REPEATS; r++)); do
      m="$OUT/tessera-w$W-s$S-r$r.jsonl"
      echo "# tessera: $W workers, $S servers, run $r" >&2
      "$TESSERA" launch --servers "$S" --workers "$W" --hidden 256,128 --batch_size 64 \
        --optimizer "$OPT" --lr "$LR" --steps "$STEPS" --test_limit 1000 --log_every 0 \
        --sync bsp --seed 1 --metrics_out "$m" "${EXTRA[@]}" > "$OUT/tessera-w$W-s$S-r$r.log" 2>&1 ||
        { echo "run.sh: tessera failed, see $OUT/tessera-w$W-s$S-r$r.log" >&2; exit 1; }
      tail -n 1 "$m" | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["framework"]="tessera"; print(json.dumps(d))' >> "$RESULTS"
    done
  done
  for ((r = 1; r <= REPEATS; r++)); do
    echo "# torch: $W workers, run $r" >&2
    "$PY" bench/train/torch_ddp.py --workers "$W" --steps "$STEPS" --batch_size 64 \
      --optimizer "$OPT" --lr "$LR" --threads 1 --data data/mnist >> "$RESULTS" 2> "$OUT/torch-w$W-r$r.log" ||
      { echo "run.sh: torch failed, see $OUT/torch-w$W-r$r.log" >&2; exit 1; }
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$PY" - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best_torch, best_tess = {}, {}
for r in rows:
    if r["framework"] == "torch":
        w = r["workers"]
        if w not in best_torch or r["samples_per_sec"] > best_torch[w]["samples_per_sec"]:
            best_torch[w] = r
    else:
        k = (r["workers"], r["servers"])
        if k not in best_tess or r["samples_per_sec"] > best_tess[k]["samples_per_sec"]:
            best_tess[k] = r
print("| workers | servers | Tessera samples/s | PyTorch DDP samples/s | ratio | "
      "Tessera ms/step: compute | push wait | pull wait | other |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (w, s), t in sorted(best_tess.items()):
    p = best_torch.get(w)
    ps = p["samples_per_sec"] if p else float("nan")
    ms = lambda x: 1000.0 * x / t["steps"]
    other = t["train_s"] - t["compute_s"] - t["push_s"] - t["pull_s"]
    print(f"| {w} | {s} | {t['samples_per_sec']:.0f} | {ps:.0f} | {t['samples_per_sec'] / ps:.2f}x | "
          f"{ms(t['compute_s']):.2f} | {ms(t['push_s']):.2f} | {ms(t['pull_s']):.2f} | {ms(other):.2f} |")
EOF
