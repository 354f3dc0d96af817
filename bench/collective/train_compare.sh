#!/usr/bin/env bash
# Training throughput of the MNIST MLP (784-256-128-10, batch 64 per worker, SGD) with
# --sync=allreduce against --sync=bsp (1 server) in the same run, runs interleaved so
# machine load hits both alike. Prints a markdown table (docs/benchmarks-collective.md):
# best of R runs per cell.
#
# Usage: bench/collective/train_compare.sh [--build DIR] [--steps N] [--workers "2 4"]
#                                          [--repeats R] [-- extra tessera train flags]
# Run from the repository root.
set -euo pipefail
BUILD=build
STEPS=300
WORKERS="2 4"
REPEATS=2
EXTRA=()
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "train_compare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
TESSERA="$BUILD/launch/tessera"
[[ -x "$TESSERA" ]] || { echo "train_compare.sh: $TESSERA not built" >&2; exit 2; }
OUT=$(mktemp -d /tmp/tessera-bench-coll.XXXXXX)
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT" >&2
for W in $WORKERS; do
  for ((r = 1; r <= REPEATS; r++)); do
    for SYNC in bsp allreduce; do
      m="$OUT/$SYNC-w$W-r$r.jsonl"
      "$TESSERA" launch --servers 1 --workers "$W" --hidden 256,128 --batch_size 64 --optimizer sgd --lr 0.01 \
        --steps "$STEPS" --test_limit 1000 --log_every 0 --sync "$SYNC" --seed 1 --metrics_out "$m" "${EXTRA[@]}" \
        > "$OUT/$SYNC-w$W-r$r.log" 2>&1 || { echo "tessera failed: $OUT/$SYNC-w$W-r$r.log" >&2; exit 1; }
    done
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, sys
best = {}
for f in glob.glob(os.path.join(sys.argv[1], "*.jsonl")):
    s = [json.loads(l) for l in open(f) if '"summary"' in l][-1]
    k = (s["workers"], s["sync"])
    if k not in best or s["samples_per_sec"] > best[k]["samples_per_sec"]:
        best[k] = s
print("| workers | bsp samples/s | allreduce samples/s | allreduce / bsp | bsp ms/step: compute, push+pull wait | allreduce ms/step: compute, all-reduce wait | test accuracy bsp / allreduce |")
print("|--:|--:|--:|--:|--:|--:|--:|")
for w in sorted({k[0] for k in best}):
    b, a = best[(w, "bsp")], best[(w, "allreduce")]
    ms = lambda s, x: 1000.0 * s[x] / s["steps"]
    print(f"| {w} | {b['samples_per_sec']:.0f} | {a['samples_per_sec']:.0f} | {a['samples_per_sec'] / b['samples_per_sec']:.2f}x | "
          f"{ms(b,'compute_s'):.2f}, {ms(b,'push_s') + ms(b,'pull_s'):.2f} | {ms(a,'compute_s'):.2f}, {ms(a,'push_s'):.2f} | "
          f"{b['test_accuracy']:.4f} / {a['test_accuracy']:.4f} |")
PY
