#!/usr/bin/env bash
# bench/transport/handoff_tessera.sh BUILD [BYTES] [ITERS] : where a Tessera dense push+pull
# over TCP spends its CPU and context switches, per process, to set beside bench_handoff's
# client and echo figures (docs/benchmarks-transport.md, "Worker thread shapes"). Runs
# `tessera launch --servers 1 --workers 1` (--shm=off, asp, --auth=none) and, once it is
# warm, reads each process's CPU time (/proc/PID/stat, all threads) and context switches
# (/proc/PID/task/*/status, voluntary + involuntary) over a window of WINDOW seconds
# (default 2) from 2 s after the start; requests in the window = its length / the run's µs
# per request, so ITERS must outlast the window (default 80000). FLAGS adds flags to the
# job (e.g. FLAGS=--caller_leads=true). One line:
#   us=... coordinator=CPU_us/switches server=... worker=...   (per request)
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,11p' "$0"; exit 2; fi
B=$1 N=${2:-4096} IT=${3:-80000} WINDOW=${WINDOW:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
read -ra EXTRA <<< "${FLAGS:-}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$B/launch/tessera" launch --servers 1 --workers 1 --program "$B/bench/ps/ps_bench" -- --sync=asp \
  --shm=off --bench_mode=dense --bytes="$N" --iters="$IT" --auth=none "${EXTRA[@]}" >"$log" 2>&1 &
launcher=$!
# shellcheck source=bench/transport/job_pids.sh
source "$(dirname "$0")/job_pids.sh"
job_pids "$launcher" || { echo "handoff_tessera: the job did not start" >&2; exit 1; }
sleep 2
hz=$(getconf CLK_TCK)
sample() {  # CPU µs and context switches of process $1, all its threads
  [ -r "/proc/$1/stat" ] || return 1
  local cpu sw
  cpu=$(awk -v hz="$hz" '{sub(/.*\) /, ""); print ($12 + $13) * 1e6 / hz}' "/proc/$1/stat")
  sw=$(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}')
  echo "$cpu $sw"
}
declare -A a b
for r in 0 1 2; do a[$r]=$(sample "${pid[$r]}"); done
t0=$(date +%s.%N)
sleep "$WINDOW"
for r in 0 1 2; do
  b[$r]=$(sample "${pid[$r]}") || { echo "handoff_tessera: the job ended inside the window: more ITERS" >&2; exit 1; }
done
t1=$(date +%s.%N)
wait "$launcher"
us=$(grep -o 'us_per_iter=[0-9.]*' "$log" | head -1 | cut -d= -f2)
line="us=$us"
names=(coordinator server worker)
for r in 0 1 2; do
  line+=" ${names[$r]}=$(awk -v a="${a[$r]}" -v b="${b[$r]}" -v t0="$t0" -v t1="$t1" -v us="$us" 'BEGIN {
    split(a, x, " "); split(b, y, " "); n = (t1 - t0) * 1e6 / us
    printf "%.1f/%.2f", (y[1] - x[1]) / n, (y[2] - x[2]) / n }')"
done
echo "$line"
