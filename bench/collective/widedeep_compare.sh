#!/usr/bin/env bash
# Training throughput of widedeep on a9a (examples/widedeep_a9a.flags: embed 8, MLP
# 64-32-1, batch 64 per worker, adagrad) with --sync=hybrid (dense MLP by all-reduce,
# tables through the servers) against --sync=bsp (everything through the servers), same
# command otherwise, 2 servers, runs interleaved so machine load hits both alike. Prints a
# markdown table (docs/benchmarks-collective.md): best of R runs per cell.
#
# Usage: bench/collective/widedeep_compare.sh [--build DIR] [--steps N] [--workers "2 4"]
#                                             [--repeats R] [-- extra tessera train flags]
# Run from the repository root.
set -euo pipefail
BUILD=build
STEPS=400
WORKERS="2"
REPEATS=3
EXTRA=()
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "widedeep_compare.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
TESSERA="$BUILD/launch/tessera"
[[ -x "$TESSERA" ]] || { echo "widedeep_compare.sh: $TESSERA not built" >&2; exit 2; }
OUT=$(mktemp -d /tmp/tessera-bench-wd.XXXXXX)
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT" >&2
for W in $WORKERS; do
  for ((r = 1; r <= REPEATS; r++)); do
    for SYNC in bsp hybrid; do
      m="$OUT/$SYNC-w$W-r$r.jsonl"
      "$TESSERA" launch --servers 2 --workers "$W" --flagfile examples/widedeep_a9a.flags --steps "$STEPS" \
        --test_limit 4000 --log_every 0 --sync "$SYNC" --metrics_out "$m" "${EXTRA[@]}" \
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
print("| workers | bsp samples/s | hybrid samples/s | hybrid / bsp | bsp ms/step: compute, push+pull wait | hybrid ms/step: compute, all-reduce+push wait, pull wait | KB pushed/step bsp / hybrid | test AUC bsp / hybrid |")
print("|--:|--:|--:|--:|--:|--:|--:|--:|")
for w in sorted({k[0] for k in best}):
    b, h = best[(w, "bsp")], best[(w, "hybrid")]
    ms = lambda s, x: 1000.0 * s[x] / s["steps"]
    kb = lambda s: s["bytes_pushed"] / s["steps"] / 1024
    print(f"| {w} | {b['samples_per_sec']:.0f} | {h['samples_per_sec']:.0f} | {h['samples_per_sec'] / b['samples_per_sec']:.2f}x | "
          f"{ms(b,'compute_s'):.2f}, {ms(b,'push_s') + ms(b,'pull_s'):.2f} | {ms(h,'compute_s'):.2f}, {ms(h,'push_s'):.2f}, {ms(h,'pull_s'):.2f} | "
          f"{kb(b):.1f} / {kb(h):.1f} | {b['test_auc']:.4f} / {h['test_auc']:.4f} |")
PY
