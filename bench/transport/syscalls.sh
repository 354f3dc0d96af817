#!/usr/bin/env bash
# bench/transport/syscalls.sh BUILD... : system calls per 4 KiB request (docs/benchmarks-
# transport.md, "System calls per request"), each side of a running dense push+pull over
# TCP (`tessera launch --servers 1 --workers 1`, --shm=off, asp, --auth=none) for each
# build, and each side of the raw ZeroMQ echo pair of the first build (`ps_bench
# --bench_mode=baseline --echo_bind / --echo_connect`, `raw2` in tcp_compare.sh). Each
# process is traced with `strace -c -f` for WINDOW seconds (default 2) from 2 s after it
# starts; a request is one message each way, so calls per request = calls / sendto calls
# of that process (one sendto per 4 KiB message here). strace slows every call: only the
# counts mean anything. One line per process: total per request, then the busiest calls;
# with THREADS=1, one line per thread instead (tid, then the same). FLAGS adds flags to
# the Tessera jobs (e.g. FLAGS=--caller_leads=true). PERF=1 counts with perf's syscall
# tracepoints instead, per thread, at full speed: strace stretches a request past
# libzmq's 1 ms throttle on a send's command check, which then runs on every send and
# adds calls that a request at full speed rarely makes (benchmarks-transport-lead.md).
#   bash bench/transport/syscalls.sh build /work/main/build
set -euo pipefail
if [ $# -lt 1 ]; then sed -n '2,16p' "$0"; exit 2; fi
N=4096 IT=400000 WINDOW=${WINDOW:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
read -ra EXTRA <<< "${FLAGS:-}"
# shellcheck source=bench/transport/job_pids.sh
source "$(dirname "$0")/job_pids.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CALLS="getpid poll read write futex sendto recvfrom epoll_wait"
trace() {  # name pid: strace -c of pid for WINDOW s, summarised per request
  if [ "${PERF:-0}" = 1 ]; then
    local ev=raw_syscalls:sys_enter c
    for c in $CALLS; do ev+=",syscalls:sys_enter_$c"; done
    perf stat --per-thread -x, -e "$ev" -p "$2" -- sleep "$WINDOW" 2>"$tmp/$1" || true
    # Lines "comm-tid,count,,event,...": per thread, all calls and the named ones.
    awk -F, -v name="$1" -v calls="$CALLS" '$2 ~ /^[0-9]+$/ { ev = $4; sub(/.*sys_enter_?/, "", ev); if (ev == "") ev = "all"
        v[$1 "," ev] = $2; th[$1] = 1; if (ev == "sendto") req += $2 }
      END {
        if (req == 0) { print name ": no sendto seen"; exit }
        n = split(calls, k, " ")
        for (t in th) {
          if (v[t ",all"] / req < 0.2) continue
          line = sprintf("%s %s: %.1f calls/request (%d requests)", name, t, v[t ",all"] / req, req)
          for (i = 1; i <= n; i++) if (v[t "," k[i]] / req >= 0.05) line = line sprintf(" %s=%.2f", k[i], v[t "," k[i]] / req)
          print line
        }
      }' "$tmp/$1"
    return
  fi
  if [ "${THREADS:-0}" = 1 ]; then
    timeout -s INT "$WINDOW" strace -f -p "$2" -o "$tmp/$1" >/dev/null 2>&1 || true
    # Lines "TID call(..." (an interrupted call's "<... call resumed>" is not counted twice).
    awk -v name="$1" '$2 !~ /^</ && match($2, /^[a-z_0-9]+\(/) {
        k = substr($2, 1, RLENGTH - 1); c[$1 " " k]++; t[$1]++; if (k == "sendto") req++ }
      END {
        if (req == 0) { print name ": no sendto seen"; exit }
        for (tid in t) {
          if (t[tid] / req < 0.2) continue
          line = sprintf("%s tid %s: %.1f calls/request (%d requests)", name, tid, t[tid] / req, req)
          for (tk in c) { split(tk, p, " "); if (p[1] == tid && c[tk] / req >= 0.2) line = line sprintf(" %s=%.1f", p[2], c[tk] / req) }
          print line
        }
      }' "$tmp/$1"
    return
  fi
  timeout -s INT "$WINDOW" strace -c -f -p "$2" -o "$tmp/$1" >/dev/null 2>&1 || true
  awk -v name="$1" 'NF >= 5 && $4 ~ /^[0-9]+$/ && $NF != "total" { c[$NF] = $4; order[++n] = $NF }
    END {
      req = c["sendto"]
      if (req == 0) { print name ": no sendto seen"; exit }
      tot = 0
      for (k in c) tot += c[k]
      line = sprintf("%s: %.1f calls/request (%d requests)", name, tot / req, req)
      for (i = 1; i <= n; i++) if (c[order[i]] / req >= 0.5) line = line sprintf(" %s=%.1f", order[i], c[order[i]] / req)
      print line
    }' "$tmp/$1"
}
for B in "$@"; do
  name=$(basename "$(dirname "$(realpath "$B")")")
  "$B/launch/tessera" launch --servers 1 --workers 1 --program "$B/bench/ps/ps_bench" -- --sync=asp \
    --shm=off --bench_mode=dense --bytes="$N" --iters="$IT" --auth=none "${EXTRA[@]}" >/dev/null 2>&1 &
  launcher=$!
  job_pids "$launcher" || { echo "syscalls: the job did not start" >&2; exit 1; }
  sleep 2
  trace "$name:server" "${pid[1]}" &
  trace "$name:worker" "${pid[2]}"
  wait %2 2>/dev/null || true
  kill "$launcher" 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true
done
P="$1/bench/ps/ps_bench" PORT=${PORT:-5598}
"$P" --bench_mode=baseline --echo_bind=tcp://127.0.0.1:"$PORT" --bytes="$N" --iters="$IT" >/dev/null 2>&1 &
echo_pid=$!
sleep 0.3
"$P" --bench_mode=baseline --echo_connect=tcp://127.0.0.1:"$PORT" --bytes="$N" --iters="$IT" >/dev/null 2>&1 &
client_pid=$!
sleep 2
trace "raw:echo" "$echo_pid" &
trace "raw:client" "$client_pid"
wait %1 2>/dev/null || true
kill "$client_pid" "$echo_pid" 2>/dev/null || true
wait 2>/dev/null || true
