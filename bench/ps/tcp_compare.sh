#!/usr/bin/env bash
# bench/ps/tcp_compare.sh ROUNDS BYTES ITERS BUILD... : a dense push+pull over TCP with the
# worker and the server in separate processes (`tessera launch --servers 1 --workers 1`,
# --shm=off, asp), --auth=none and --auth=mac, for each build directory, against two raw
# ZeroMQ round trips of the same bytes in the same round: `raw` (both ends in one
# process) and `raw2` (an echo in a second process over 127.0.0.1, as a worker and a
# server are). The builds run in turn, their order reversed every other round, because
# the machine's speed drifts between runs (docs/benchmarks.md). One line per round, µs
# per iteration; with STAT=1 each Tessera run also gives the CPU µs per iteration of all
# its processes together and their context switches per iteration (perf stat); FLAGS
# adds flags to every Tessera run (e.g. FLAGS=--caller_leads=true).
#   bash bench/ps/tcp_compare.sh 6 4096 3000 build /path/to/main/build
set -euo pipefail
if [ $# -lt 4 ]; then sed -n '2,12p' "$0"; exit 2; fi
R=$1 N=$2 IT=$3; shift 3
P="$1/bench/ps/ps_bench"  # the raw baselines: the first build's
PORT=${PORT:-5599}
read -ra EXTRA <<< "${FLAGS:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }
for ((r = 0; r < R; r++)); do
  line="$r load=$(cut -d' ' -f1 /proc/loadavg) raw=$("$P" --bench_mode=baseline --bytes="$N" --iters="$IT" 2>/dev/null | field zmq_us_per_iter)"
  "$P" --bench_mode=baseline --echo_bind=tcp://127.0.0.1:$PORT --bytes="$N" --iters="$IT" >/dev/null 2>&1 &
  sleep 0.3
  line+=" raw2=$("$P" --bench_mode=baseline --echo_connect=tcp://127.0.0.1:$PORT --bytes="$N" --iters="$IT" 2>/dev/null | field zmq_us_per_iter)"
  wait
  bs=("$@")
  ((r % 2)) && mapfile -t bs < <(printf '%s\n' "$@" | tac)
  for B in "${bs[@]}"; do
    for a in none mac; do
      cmd=("$B/launch/tessera" launch --servers 1 --workers 1 --program "$B/bench/ps/ps_bench" -- --sync=asp --shm=off
           --bench_mode=dense --bytes="$N" --iters="$IT" --auth=$a "${EXTRA[@]}")
      name=$(basename "$(dirname "$(realpath "$B")")"):$a
      if [ "${STAT:-0}" = 1 ]; then
        out=$(perf stat -x, -e task-clock,context-switches -- "${cmd[@]}" 2>&1)
        tc=$(echo "$out" | grep task-clock | cut -d, -f1)
        cs=$(echo "$out" | grep context-switches | cut -d, -f1)
        line+=" $name=$(echo "$out" | field us_per_iter)"
        line+="($(awk -v t="$tc" -v c="$cs" -v n="$IT" 'BEGIN{printf "cpu_us=%.1f,cs=%.2f", t*1000/n, c/n}'))"
      else
        line+=" $name=$("${cmd[@]}" 2>/dev/null | field us_per_iter)"
      fi
    done
  done
  echo "$line"
done
