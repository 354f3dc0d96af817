#!/usr/bin/env bash
# bench/ps/run.sh [build-dir]: the push/pull benchmark table (docs/benchmarks.md).
# Dense push+pull (one PushPull round trip per iteration, asp, so no worker waits for
# another) for 1-2 servers x 1/2/4 workers x 4 KiB/1 MiB/64 MiB, sparse push+pull of
# 4096 random keys from a 10M-key table (D=16), and in the same run the raw-ZeroMQ
# round trip and memcpy of the same bytes.
set -euo pipefail
B=${1:-build}
T="$B/launch/tessera"
P="$B/bench/ps/ps_bench"
run() {  # servers workers args...
  local s=$1 w=$2; shift 2
  "$T" launch --servers "$s" --workers "$w" --program "$P" -- --sync=asp "$@" 2>/dev/null | grep RESULT
}
sum() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.3f", s}'; }
avg() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f){s+=kv[2];n++}}} END{printf "%.1f", s/n}'; }

echo "| payload | raw ZeroMQ round trip GB/s | memcpy GB/s | servers | workers | Tessera push+pull GB/s (sum over workers) | per-iteration us (mean) | Tessera / raw ZeroMQ (1 worker) |"
echo "|---|---|---|---|---|---|---|---|"
for bytes in 4096 1048576 67108864; do
  iters=200; [ "$bytes" -ge 67108864 ] && iters=10; [ "$bytes" -eq 1048576 ] && iters=100
  base=$("$P" --bench_mode=baseline --bytes=$bytes --iters=$iters)
  zg=$(echo "$base" | sum zmq_gbps); mg=$(echo "$base" | sum memcpy_gbps)
  for s in 1 2; do
    for w in 1 2 4; do
      out=$(run "$s" "$w" --bench_mode=dense --bytes=$bytes --iters=$iters --chunk_bytes=$(( bytes > 1048576 ? 16777216 : 1048576 )))
      g=$(echo "$out" | sum gbps); us=$(echo "$out" | avg us_per_iter)
      ratio=""; [ "$w" = 1 ] && ratio=$(awk -v a="$g" -v b="$zg" 'BEGIN{printf "%.2f", a/b}')
      echo "| $bytes | $zg | $mg | $s | $w | $g | $us | $ratio |"
    done
  done
done
echo
echo "| sparse | servers | workers | keys/s (push+pull, sum over workers) |"
echo "|---|---|---|---|"
for s in 1 2; do
  for w in 1 2 4; do
    out=$(run "$s" "$w" --bench_mode=sparse --keys_per_batch=4096 --table_keys=10000000 --dim=16 --iters=100)
    echo "| 4096 keys x D=16 | $s | $w | $(echo "$out" | sum keys_per_s) |"
  done
done
