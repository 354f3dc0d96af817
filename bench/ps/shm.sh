#!/usr/bin/env bash
# bench/ps/shm.sh [build-dir]: same-host shared memory vs TCP (docs/benchmarks.md, "Same-host
# shared memory"). Dense push+pull (one PushPull round trip per iteration, asp), 1 server x
# 1 worker started by `tessera launch` on this host, at 4 KiB / 1 MiB / 64 MiB:
#   shm      --shm=auto (the default), default --auth (CURVE on the ZeroMQ connection)
#   tcp      --shm=off, default --auth
#   shm/none --shm=auto --auth=none (no encryption, as the raw ZeroMQ baseline)
#   tcp/none --shm=off --auth=none (plain TCP loopback, as the raw ZeroMQ baseline)
# and in the same run the raw-ZeroMQ round trip over TCP loopback and memcpy of the same bytes.
# Each number is the median of R runs (default 3; the four measurements of a payload are
# interleaved, so load on this shared VM hits them alike).
set -euo pipefail
B=${1:-build}
R=${2:-3}
T="$B/launch/tessera"
P="$B/bench/ps/ps_bench"
run() {  # args...
  "$T" launch --servers 1 --workers 1 --program "$P" -- --sync=asp --bench_mode=dense "$@" 2>/dev/null | grep RESULT
}
get() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.3f", s}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{printf "%.3f", a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

echo "| payload | raw ZeroMQ TCP GB/s | memcpy GB/s | Tessera tcp/none GB/s | Tessera tcp (CURVE) GB/s | Tessera shm/none GB/s | Tessera shm (CURVE) GB/s | shm µs/iter | shm/none / raw ZeroMQ | shm / raw ZeroMQ | shm/none / tcp/none | shm / tcp (CURVE) | shm / memcpy |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for bytes in 4096 1048576 67108864; do
  iters=2000; [ "$bytes" -ge 67108864 ] && iters=20; [ "$bytes" -eq 1048576 ] && iters=1000
  chunk=$(( bytes > 1048576 ? 16777216 : 1048576 ))
  zs="" ms="" ns="" ts="" ss="" sn="" us_s=""
  for r in $(seq "$R"); do
    base=$("$P" --bench_mode=baseline --bytes=$bytes --iters=$iters)
    zs="$zs $(echo "$base" | get zmq_gbps)"; ms="$ms $(echo "$base" | get memcpy_gbps)"
    ns="$ns $(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=off --auth=none | get gbps)"
    ts="$ts $(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=off | get gbps)"
    sn="$sn $(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=auto --auth=none | get gbps)"
    out=$(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=auto)
    ss="$ss $(echo "$out" | get gbps)"; us_s="$us_s $(echo "$out" | get us_per_iter)"
  done
  zg=$(echo $zs | median); mg=$(echo $ms | median); none=$(echo $ns | median); tcp=$(echo $ts | median)
  shm=$(echo $ss | median); us=$(echo $us_s | median); shmn=$(echo $sn | median)
  echo "| $bytes | $zg | $mg | $none | $tcp | $shmn | $shm | $us | $(ratio "$shmn" "$zg") | $(ratio "$shm" "$zg") | $(ratio "$shmn" "$none") | $(ratio "$shm" "$tcp") | $(ratio "$shm" "$mg") |"
done
