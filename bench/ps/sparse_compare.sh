#!/usr/bin/env bash
# bench/ps/sparse_compare.sh [new-build] [old-build] [reps]: sparse push+pull through
# real servers (ps_bench --bench_mode=sparse: 4096 random keys of a 10M-key table, D=16,
# SGD, asp, --auth=none) for 1x1 and 2x2 servers x workers, with this tree's binaries and
# with an older build's (the old ShardStore and client), interleaved in one command so
# both see the same machine load; and the raw-ZeroMQ round trip of the same bytes
# (ps_bench --bench_mode=baseline: one DEALER/ROUTER pair echoing 4096 * (8 + 4 * 16)
# bytes, the keys and rows one push+pull moves each way). Each cell is the median of
# `reps` runs; keys/s are summed over the workers. docs/benchmarks-sparse.md.
set -euo pipefail
NEW=${1:-build}
OLD=${2:-/work/main/build}
REPS=${3:-5}
K=4096 D=16 ITERS=${ITERS:-200}
run() {  # build servers workers
  "$1/launch/tessera" launch --servers "$2" --workers "$3" --program "$1/bench/ps/ps_bench" -- \
    --sync=asp --auth=none --bench_mode=sparse --keys_per_batch=$K --table_keys=10000000 --dim=$D \
    --iters=$ITERS 2>/dev/null | grep RESULT |
    awk '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]=="keys_per_s")s+=kv[2]}} END{printf "%.0f\n", s}'
}
zmq() {  # keys/s equivalent of the raw round trip
  "$NEW/bench/ps/ps_bench" --bench_mode=baseline --bytes=$((K * (8 + 4 * D))) --iters=$ITERS |
    awk -v k=$K '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]=="zmq_us_per_iter")printf "%.0f\n", k/kv[2]*1e6}}'
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
declare -A R
for ((r = 0; r < REPS; r++)); do
  R[z]+="$(zmq) "
  for sw in "1 1" "2 2"; do
    set -- $sw
    R[new$1]+="$(run "$NEW" "$1" "$2") "
    R[old$1]+="$(run "$OLD" "$1" "$2") "
  done
done
z=$(echo ${R[z]} | tr ' ' '\n' | median)
echo "| servers x workers | old store keys/s | new store keys/s | new / old | raw ZeroMQ keys/s (same bytes, 1 pair) | new / raw ZeroMQ |"
echo "|---|---|---|---|---|---|"
for s in 1 2; do
  o=$(echo ${R[old$s]} | tr ' ' '\n' | median); n=$(echo ${R[new$s]} | tr ' ' '\n' | median)
  awk -v s=$s -v o=$o -v n=$n -v z=$z 'BEGIN{printf "| %dx%d | %d | %d | %.2f | %d | %.2f |\n", s, s, o, n, n/o, z, n/z}'
done
echo "(runs: old ${R[old1]}/ ${R[old2]}; new ${R[new1]}/ ${R[new2]}; zmq ${R[z]})"
