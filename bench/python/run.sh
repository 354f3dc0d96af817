#!/usr/bin/env bash
# The Python layer's cost (docs/benchmarks-python.md): the MNIST MLP (784-256-128-10,
# ReLU, batch 64 per worker, SGD lr 0.01) trained three ways in the same run, with 1, 2
# and 4 worker processes:
#   python  examples/python/mnist.py through Tessera (tessera launch --program python3,
#           1 server, bsp): torch computes, the servers apply SGD
#   ddp     the same model under PyTorch DistributedDataParallel over gloo
#           (bench/train/torch_ddp.py, the existing DDP baseline)
#   c++     `tessera train` with the same model and flags (the C++ worker)
# samples/s of the step loop only (process start-up, data loading and evaluation are not
# counted by any of the three). Prints a markdown table with the ratios, and the Python
# layer's own time per step (DistributedOptimizer.timing(): the hooks and step() without
# its waits) with its share of the step.
#
# Usage: bench/python/run.sh [--build DIR] [--steps N] [--workers "1 2 4"] [--repeats R]
# Each cell is the best of R runs (default 1). Run from the repository root.
set -euo pipefail

BUILD=build
STEPS=300
WORKERS="1 2 4"
REPEATS=1
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

TESSERA="$BUILD/launch/tessera"
PY=/usr/bin/python3  # Debian's python3 carries python3-torch
[[ -x "$TESSERA" ]] || { echo "run.sh: $TESSERA not built" >&2; exit 2; }
[[ -f "$BUILD/python/tessera/__init__.py" ]] || { echo "run.sh: the Python package is not built ($BUILD/python)" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "run.sh: $PY cannot import torch (python3-torch)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/tessera-bench-python.XXXXXX)
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# logs: $OUT" >&2

for W in $WORKERS; do
  for ((r = 1; r <= REPEATS; r++)); do
    echo "# python: $W workers, run $r" >&2
    PYTHONPATH="$BUILD/python" "$TESSERA" launch --servers 1 --workers "$W" --program "$PY" -- \
      examples/python/mnist.py --model mlp --hidden 256 --optimizer sgd --lr 0.01 --batch_size 64 \
      --epochs 1000 --steps "$STEPS" --test_limit 1000 > "$OUT/python-w$W-r$r.log" 2>&1 ||
      { echo "run.sh: the Python job failed, see $OUT/python-w$W-r$r.log" >&2; exit 1; }
    sed -n 's/.*summary: \(.*\)/\1/p' "$OUT/python-w$W-r$r.log" |
      "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["framework"]="python"; print(json.dumps(d))' >> "$RESULTS"

    echo "# c++: $W workers, run $r" >&2
    m="$OUT/cpp-w$W-r$r.jsonl"
    "$TESSERA" launch --servers 1 --workers "$W" --hidden 256,128 --batch_size 64 --optimizer sgd --lr 0.01 \
      --steps "$STEPS" --test_limit 1000 --log_every 0 --sync bsp --seed 1 --metrics_out "$m" \
      > "$OUT/cpp-w$W-r$r.log" 2>&1 || { echo "run.sh: tessera train failed, see $OUT/cpp-w$W-r$r.log" >&2; exit 1; }
    tail -n 1 "$m" | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["framework"]="c++"; print(json.dumps(d))' >> "$RESULTS"

    echo "# ddp: $W workers, run $r" >&2
    "$PY" bench/train/torch_ddp.py --workers "$W" --steps "$STEPS" --batch_size 64 --optimizer sgd --lr 0.01 \
      --threads 1 --data data/mnist >> "$RESULTS" 2> "$OUT/ddp-w$W-r$r.log" ||
      { echo "run.sh: torch DDP failed, see $OUT/ddp-w$W-r$r.log" >&2; exit 1; }
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
best = {}
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r = json.loads(line)
    k = (r["framework"], r["workers"])
    if k not in best or r["samples_per_sec"] > best[k]["samples_per_sec"]:
        best[k] = r
print("| workers | Python on Tessera samples/s | PyTorch DDP (gloo) samples/s | Python / DDP | "
      "C++ tessera train samples/s | Python / C++ | Python layer ms/step | of the step |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for w in sorted({k[1] for k in best}):
    p, d, c = (best.get((f, w), {}).get("samples_per_sec", float("nan")) for f in ("python", "torch", "c++"))
    py = best.get(("python", w), {})
    layer = py.get("layer_ms_per_step", float("nan"))
    step_ms = 1000.0 * py.get("train_s", float("nan")) / max(1, py.get("steps", 1))
    print(f"| {w} | {p:.0f} | {d:.0f} | {p / d:.2f}x | {c:.0f} | {p / c:.2f}x | {layer:.3f} | {100 * layer / step_ms:.1f} % |")
PYEOF
