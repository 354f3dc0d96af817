#!/usr/bin/env bash
# bench/ps/shm.sh [build-dir]: same-host shared memory vs TCP (docs/benchmarks.md, "Same-host
# shared memory"). Dense push+pull (one PushPull round trip per iteration, asp), 1 server x
# 1 worker started by `tessera launch` on this host, at 4 KiB / 1 MiB / 64 MiB:
#   shm      --shm=auto (the default), default --auth (CURVE on the ZeroMQ connection)
#   tcp      --shm=off, default --auth
#   tcp/none --shm=off --auth=none (plain TCP loopback, as the raw ZeroMQ baseline)
# and in the same run the raw-ZeroMQ round trip over TCP loopback and memcpy of the same bytes.
set -euo pipefail
B=${1:-build}
T="$B/launch/tessera"
P="$B/bench/ps/ps_bench"
run() {  # args...
  "$T" launch --servers 1 --workers 1 --program "$P" -- --sync=asp --bench_mode=dense "$@" 2>/dev/null | grep RESULT
}
get() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.3f", s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

echo "| payload | raw ZeroMQ TCP GB/s | memcpy GB/s | Tessera tcp/none GB/s | Tessera tcp (CURVE) GB/s | Tessera shm GB/s | shm µs/iter | shm / raw ZeroMQ | shm / tcp/none | shm / tcp (CURVE) | shm / memcpy |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for bytes in 4096 1048576 67108864; do
  iters=200; [ "$bytes" -ge 67108864 ] && iters=10; [ "$bytes" -eq 1048576 ] && iters=100
  chunk=$(( bytes > 1048576 ? 16777216 : 1048576 ))
  base=$("$P" --bench_mode=baseline --bytes=$bytes --iters=$iters)
  zg=$(echo "$base" | get zmq_gbps); mg=$(echo "$base" | get memcpy_gbps)
  none=$(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=off --auth=none | get gbps)
  tcp=$(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=off | get gbps)
  out=$(run --bytes=$bytes --iters=$iters --chunk_bytes=$chunk --shm=auto)
  shm=$(echo "$out" | get gbps); us=$(echo "$out" | get us_per_iter)
  echo "| $bytes | $zg | $mg | $none | $tcp | $shm | $us | $(ratio "$shm" "$zg") | $(ratio "$shm" "$none") | $(ratio "$shm" "$tcp") | $(ratio "$shm" "$mg") |"
done
