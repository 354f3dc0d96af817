#!/usr/bin/env bash
# bench/ps/shm.sh [build-dir] [rounds]: each --auth mode over same-host shared memory and over
# TCP loopback (docs/benchmarks.md, "Same-host shared memory and each --auth mode"). Dense
# push+pull (one PushPull round trip per iteration, asp), 1 server x 1 worker started by
# `tessera launch` on this host, at 4 KiB / 1 MiB / 64 MiB, six jobs per payload and round:
#   --auth: mac (the default, --auth=auto with the launcher's key), none, curve (the opt-in
#           encryption), each named on the command line so the table says what ran;
#   shm     --shm=auto (the default: shared memory and the local link with peers on this host)
#   tcp     --shm=off (TCP loopback; --caller_leads=true, the default, applies here)
# and in the same round the raw-ZeroMQ round trip over TCP loopback (no security) and memcpy
# of the same bytes. Each cell is the median over the rounds (default 3), ratios the median of
# the per-round ratios; each round runs its jobs in reverse order on even rounds, so load on a
# shared machine hits them alike. About 35 s a round on the 2-vCPU dev VM. SIZES (a subset of
# the three payloads) and ITERS (iterations for every payload) shorten a run (the tests do).
# BASE=<other build dir> instead compares two builds (docs/benchmarks-shm.md): per payload
# and round the raw-ZeroMQ round trip and one same-host job (--auth=$AUTH, default mac) of
# each build, their order flipped each round; it prints this build / BASE and each / raw.
# CHUNK there sets --chunk_bytes (default: 16 MiB above 1 MiB, as below; the flag's own is 1 MiB).
set -euo pipefail
B=${1:-build}
R=${2:-3}
T="$B/launch/tessera"
P="$B/bench/ps/ps_bench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

get() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.4f\n", s}'; }
median() { sort -g "$1" | awk -v fmt="${2:-%.3f}" '{a[NR]=$1} END{printf fmt, NR ? a[int((NR+1)/2)] : 0}'; }
logged_auth() { awk '/auth=mac:/{m="mac"} /CURVE authentication/{m="curve"} END{print m ? m : "none"}'; }
ratios() {  # numerator-prefix denominator-prefix [invert]: per-round ratios, their median
  for r in $(seq "$R"); do
    awk -v a="$(cat "$tmp/$1.$r")" -v b="$(cat "$tmp/$2.$r")" -v inv="${3:-0}" \
      'BEGIN{printf "%.4f\n", inv ? b/a : a/b}'
  done >"$tmp/ratio"
  echo "$label $t, $1 / $2$([ "${3:-0}" = 1 ] && echo ' (time)'): $(tr '\n' ' ' <"$tmp/ratio")" >>"$tmp/rounds"
  median "$tmp/ratio" "${4:-%.2f}"
}
if [ -n "${BASE:-}" ]; then
  A=${AUTH:-mac}
  printf '| payload | raw ZeroMQ TCP GB/s | this build GB/s | BASE GB/s | this / BASE | this / raw | BASE / raw |\n|---|--:|--:|--:|--:|--:|--:|\n' >"$tmp/table"
  for bytes in ${SIZES:-1048576 67108864}; do
    iters=2000; [ "$bytes" -ge 67108864 ] && iters=20; [ "$bytes" -eq 1048576 ] && iters=1000
    iters=${ITERS:-$iters}
    chunk=${CHUNK:-$((bytes > 1048576 ? 16777216 : 1048576))}
    label="$((bytes >= 1048576 ? bytes >> 20 : bytes >> 10)) $([ "$bytes" -ge 1048576 ] && echo MiB || echo KiB)"
    for r in $(seq "$R"); do
      order=(raw new base); [ $((r % 2)) = 0 ] && order=(base new raw)
      for j in "${order[@]}"; do
        case $j in
          raw) "$P" --bench_mode=baseline --bytes=$bytes --iters=$iters | get zmq_gbps >"$tmp/raw.$r" ;;
          *) d=$B; [ "$j" = base ] && d=$BASE
             out=$("$d/launch/tessera" launch --servers 1 --workers 1 --program "$d/bench/ps/ps_bench" -- --sync=asp \
                     --bench_mode=dense --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --auth="$A" 2>&1)
             if grep -qE 'shared memory off for|shared memory for replies from .* off' <<<"$out"; then
               echo "WARNING: $label, $j: shared memory fell back to TCP" >>"$tmp/warn"
             fi
             get gbps <<<"$out" >"$tmp/$j.$r" ;;
        esac
      done
    done
    for f in raw new base; do cat "$tmp/$f".[0-9]* >"$tmp/$f.all"; done
    t="(--auth=$A)"
    echo "| $label | $(median "$tmp/raw.all") | $(median "$tmp/new.all") | $(median "$tmp/base.all") | $(ratios new base) | $(ratios new raw) | $(ratios base raw) |" >>"$tmp/table"
    rm -f "$tmp"/*.[0-9]* "$tmp"/*.all
  done
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $R rounds, medians; BASE=$BASE"
  [ -f "$tmp/warn" ] && cat "$tmp/warn"
  echo; cat "$tmp/table"; echo; echo "Per-round ratios (round 1 first):"; cat "$tmp/rounds"
  exit 0
fi
modes=(mac none curve)
for bytes in ${SIZES:-4096 1048576 67108864}; do
  iters=2000; [ "$bytes" -ge 67108864 ] && iters=20; [ "$bytes" -eq 1048576 ] && iters=1000
  iters=${ITERS:-$iters}
  chunk=$((bytes > 1048576 ? 16777216 : 1048576))
  jobs=(raw)
  for t in shm tcp; do for a in "${modes[@]}"; do jobs+=("$t $a"); done; done
  for r in $(seq "$R"); do
    order=("${jobs[@]}")
    if [ $((r % 2)) = 0 ]; then order=(); for ((i = ${#jobs[@]} - 1; i >= 0; i--)); do order+=("${jobs[i]}"); done; fi
    for j in "${order[@]}"; do
      read -r t a <<<"$j"
      if [ "$t" = raw ]; then
        out=$("$P" --bench_mode=baseline --bytes=$bytes --iters=$iters)
        get zmq_gbps <<<"$out" >"$tmp/raw.$r"; get memcpy_gbps <<<"$out" >"$tmp/memcpy.$r"
        continue
      fi
      shm=auto; [ "$t" = tcp ] && shm=off
      out=$("$T" launch --servers 1 --workers 1 --program "$P" -- --sync=asp --bench_mode=dense \
              --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=$shm --auth="$a" 2>&1)
      [ "$(logged_auth <<<"$out")" = "$a" ] || { echo "shm.sh: --auth=$a not what the processes logged" >&2; exit 1; }
      if grep -qE 'shared memory off for|shared memory for replies from .* off' <<<"$out" && [ "$t" = shm ]; then
        echo "WARNING: $bytes bytes, $t $a: shared memory fell back to TCP" >>"$tmp/warn"
      fi
      get gbps <<<"$out" >"$tmp/$t-$a.$r"; get us_per_iter <<<"$out" >"$tmp/us-$t-$a.$r"
    done
  done
  for f in raw memcpy shm-mac shm-none shm-curve tcp-mac tcp-none tcp-curve us-shm-mac us-tcp-mac; do
    cat "$tmp/$f".[0-9]* >"$tmp/$f.all"
  done
  label="$((bytes >= 1048576 ? bytes >> 20 : bytes >> 10)) $([ "$bytes" -ge 1048576 ] && echo MiB || echo KiB)"
  for t in shm tcp; do
    row="| $label | $t | $(median "$tmp/raw.all") | $(median "$tmp/memcpy.all")"
    for a in "${modes[@]}"; do row="$row | $(median "$tmp/$t-$a.all")"; done
    row="$row | $(median "$tmp/us-$t-mac.all" %.0f)"
    for a in "${modes[@]}"; do row="$row | $(ratios "$t-$a" raw)"; done
    row="$row | $(ratios "$t-mac" "$t-none" 1) | $(ratios "$t-curve" "$t-none" 1) | $(ratios "$t-mac" memcpy 0 %.3f)"
    [ "$t" = shm ] && row="$row | $(ratios shm-mac tcp-mac) |" || row="$row | |"
    echo "$row" >>"$tmp/table"
  done
  rm -f "$tmp"/*.[0-9]* "$tmp"/*.all
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $R rounds, medians"
[ -f "$tmp/warn" ] && cat "$tmp/warn"
echo
echo "| payload | transport | raw ZeroMQ TCP GB/s | memcpy GB/s | mac (default) GB/s | none GB/s | curve GB/s | mac µs/iter | mac / raw | none / raw | curve / raw | mac / none (time) | curve / none (time) | mac / memcpy | shm / tcp (mac) |"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
cat "$tmp/table"
echo
echo "Per-round ratios (round 1 first):"
cat "$tmp/rounds"
