#!/usr/bin/env bash
# The DLRM from Python against the C++ trainer (docs/benchmarks-python.md): on one
# generated Criteo-layout set, `tessera train --model=dlrm` (examples/dlrm_criteo.flags)
# and examples/python/dlrm.py (the same model, 26 server-side Embedding tables, torch
# computing), 2 servers, 2 workers, bsp, 1 epoch, interleaved R times. samples/s of the
# step loop only (loading and evaluation are not counted by either), and the test AUC of
# each run. Prints a markdown table with the Python / C++ ratio of the best runs.
#
# Usage: bench/python/dlrm.sh [--build DIR] [--rows N] [--repeats R]
# Run from the repository root.
set -euo pipefail

BUILD=build
ROWS=300000
REPEATS=2
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "dlrm.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done

TESSERA="$BUILD/launch/tessera"
PY=/usr/bin/python3  # Debian's python3 carries python3-torch
[[ -x "$TESSERA" ]] || { echo "dlrm.sh: $TESSERA not built" >&2; exit 2; }
[[ -f "$BUILD/python/tessera/__init__.py" ]] || { echo "dlrm.sh: the Python package is not built ($BUILD/python)" >&2; exit 2; }
"$PY" -c "import torch" 2>/dev/null || { echo "dlrm.sh: $PY cannot import torch (python3-torch)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/tessera-bench-dlrm.XXXXXX)
trap 'rm -rf "$OUT/data"' EXIT
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# logs: $OUT" >&2
"$TESSERA" datagen criteo --rows "$ROWS" --seed 1 -o "$OUT/data" >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

summary() {  # the "summary: {...}" line of a log, tagged with its framework
  sed -n 's/.*summary: \(.*\)/\1/p' "$1" |
    "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); d["framework"]=sys.argv[1]; print(json.dumps(d))' "$2"
}

for ((r = 1; r <= REPEATS; r++)); do
  echo "# c++: run $r" >&2
  "$TESSERA" launch --servers 2 --workers 2 --flagfile examples/dlrm_criteo.flags --data="$OUT/data" \
    --log_every=0 > "$OUT/cpp-r$r.log" 2>&1 || { echo "dlrm.sh: tessera train failed, see $OUT/cpp-r$r.log" >&2; exit 1; }
  summary "$OUT/cpp-r$r.log" c++ >> "$RESULTS"
  echo "# python: run $r" >&2
  PYTHONPATH="$BUILD/python" "$TESSERA" launch --servers 2 --workers 2 --program "$PY" -- \
    examples/python/dlrm.py --data "$OUT/data" > "$OUT/python-r$r.log" 2>&1 ||
    { echo "dlrm.sh: the Python job failed, see $OUT/python-r$r.log" >&2; exit 1; }
  summary "$OUT/python-r$r.log" python >> "$RESULTS"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$PY" - "$RESULTS" "$ROWS" <<'PYEOF'
import json, sys
runs = {"c++": [], "python": []}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        runs[r["framework"]].append(r)
best = {k: max(v, key=lambda r: r["samples_per_sec"]) for k, v in runs.items()}
print("| %s rows, 2 servers, 2 workers, bsp | samples/s (best of %d) | all runs samples/s | test AUC |"
      % (format(int(sys.argv[2]), ","), len(runs["c++"])))
print("|---|---:|---:|---:|")
for k, name in (("c++", "C++ `tessera train --model=dlrm`"), ("python", "Python `examples/python/dlrm.py`")):
    print("| %s | %.0f | %s | %s |" % (name, best[k]["samples_per_sec"],
                                       " / ".join("%.0f" % r["samples_per_sec"] for r in runs[k]),
                                       " / ".join("%.4f" % r["test_auc"] for r in runs[k])))
print("| Python / C++ | %.2f | | |" % (best["python"]["samples_per_sec"] / best["c++"]["samples_per_sec"]))
PYEOF
