#!/usr/bin/env bash
# bench/ps/sparse_compare.sh [new-build] [base-build] [reps]: sparse push+pull through
# real servers (ps_bench --bench_mode=sparse: 4096 uniformly random keys of a 10M-key
# table per pull and per push, D=16, SGD, asp, --auth=none) for 1x1 and 2x2 servers x
# workers, with this tree's binaries and with a base build's, interleaved in one command
# so both see the same machine load, in three modes:
#   cold    an empty table (nearly every key is new: the row is created on the push)
#   steady  every key of the table pushed once first (--prefill), as in a trained model
#   overlap steady, and the pull of iteration i+1 in flight with the push of i (--overlap)
# and the raw-ZeroMQ round trip of the same bytes (ps_bench --bench_mode=baseline: a
# DEALER/ROUTER pair echoing 4096 * (8 + 4 * 16) bytes, the keys and rows one push+pull
# moves each way), one pair for 1x1 and two pairs at once (summed) for 2x2; and a plain
# C++ key-value server over raw ZeroMQ running the steady step (bench/ps/kv_baseline.cc:
# std::unordered_map rows, or KV_STORE=flat for an open-addressing table; S server and S
# worker processes, prefilled). Each cell is the
# median of `reps` runs; keys/s are summed over the workers. docs/benchmarks-sparse.md.
set -euo pipefail
NEW=${1:-build}
BASE=${2:-/work/main/build}
REPS=${3:-3}
K=4096 D=16 ITERS=${ITERS:-300}
MODES=${MODES:-"cold steady overlap"}
run() {  # build servers workers mode
  local extra=""
  case $4 in steady) extra="--prefill";; overlap) extra="--prefill --overlap";; esac
  "$1/launch/tessera" launch --servers "$2" --workers "$3" --program "$1/bench/ps/ps_bench" -- \
    --sync=asp --auth=none --bench_mode=sparse --keys_per_batch=$K --table_keys=10000000 --dim=$D \
    --iters=$ITERS $extra 2>/dev/null | grep RESULT |
    awk '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]=="keys_per_s")s+=kv[2]}} END{printf "%.0f\n", s}'
}
zmq() {  # pairs: keys/s equivalent of the raw round trip, summed over concurrent pairs
  for ((p = 0; p < $1; p++)); do
    "$NEW/bench/ps/ps_bench" --bench_mode=baseline --bytes=$((K * (8 + 4 * D))) --iters=$((ITERS * 4)) &
  done | awk -v k=$K '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]=="zmq_us_per_iter")s+=k/kv[2]*1e6}} END{printf "%.0f\n", s}'
}
kv() {  # servers (= workers): keys/s of the plain key-value server's steady step, summed
  local eps="" port=${KV_PORT:-5611} p w
  for ((p = 0; p < $1; p++)); do
    "$NEW/bench/ps/kv_baseline" --role=server --bind=tcp://127.0.0.1:$((port + p)) --workers=$1 \
      --store=${KV_STORE:-map} --table_keys=$((10000000 / $1 + 1)) &
    eps+="${eps:+,}tcp://127.0.0.1:$((port + p))"
  done
  for ((w = 0; w < $1; w++)); do
    "$NEW/bench/ps/kv_baseline" --role=worker --connect=$eps --worker=$w --workers=$1 --keys_per_batch=$K \
      --table_keys=10000000 --iters=$ITERS &
  done | awk '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]=="keys_per_s")s+=kv[2]}} END{printf "%.0f\n", s}'
  wait
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
declare -A R
for ((r = 0; r < REPS; r++)); do
  R[z1]+="$(zmq 1) "
  R[z2]+="$(zmq 2) "
  R[kv1]+="$(kv 1) "
  R[kv2]+="$(kv 2) "
  for mode in $MODES; do
    for s in 1 2; do
      R[new$s$mode]+="$(run "$NEW" $s $s $mode) "
      R[base$s$mode]+="$(run "$BASE" $s $s $mode) "
    done
  done
done
echo "| mode | servers x workers | base keys/s | new keys/s | new / base | raw ZeroMQ keys/s (same bytes, pairs = workers) | new / raw ZeroMQ | plain C++ kv server keys/s (steady) | new / kv |"
echo "|---|---|---|---|---|---|---|---|---|"
for mode in $MODES; do
  for s in 1 2; do
    o=$(echo ${R[base$s$mode]} | median); n=$(echo ${R[new$s$mode]} | median); z=$(echo ${R[z$s]} | median)
    kvs=$(echo ${R[kv$s]} | median)
    awk -v m=$mode -v s=$s -v o=$o -v n=$n -v z=$z -v kv=$kvs 'BEGIN{printf "| %s | %dx%d | %d | %d | %.2f | %d | %.3f | %d | %.2f |\n", m, s, s, o, n, n/o, z, n/z, kv, n/kv}'
  done
done
echo "(runs, keys/s: zmq 1 pair ${R[z1]}/ 2 pairs ${R[z2]}/ kv 1x1 ${R[kv1]}/ kv 2x2 ${R[kv2]}"
for mode in $MODES; do for s in 1 2; do echo "  $mode ${s}x$s base ${R[base$s$mode]}/ new ${R[new$s$mode]}"; done; done
echo ")"
