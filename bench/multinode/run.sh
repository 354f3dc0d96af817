#!/usr/bin/env bash
# bench/multinode/run.sh [BUILD_DIR] [REPEATS]: the multi-node figures of docs/benchmarks.md,
# on the namespace cluster of tests/multinode (3 nodes on this machine; root needed). The
# nodes share this machine's CPUs and its kernel's TCP stack, so these measure protocol
# and placement overhead, not network bandwidth. Each table compares against a baseline
# measured in the same run:
#   1. MNIST MLP samples/s: servers on other nodes vs every process on one node vs the
#      host's loopback (no namespaces), 2 servers x 2 workers, bsp, --auth=mac (the default
#      a multi-host job gets: a job key file), interleaved REPEATS times (default 3).
#   2. Set-up time, mpirun start to the coordinator's "training starts", 5 and 9 ranks
#      across the 3 nodes (REPEATS each).
#   3. Dense push+pull GB/s between two nodes (worker on tn1, server on tn2) through
#      Tessera (the default --auth=mac, and --auth=none) against raw ZeroMQ between the same
#      two namespaces. (bench/multinode/auth_link.sh measures the same pair as round-trip
#      times, rounds alternated, optionally over a rate-capped link.)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:-build}" && pwd)"
REPEATS="${2:-3}"
T="$BUILD/launch/tessera"
P="$BUILD/bench/ps/ps_bench"
# shellcheck source=../../tests/multinode/lib.sh
. "$SRC/tests/multinode/lib.sh"
. "$SRC/tests/multinode/job_lib.sh"
mn_require
mn_setup 3

MNIST=" --data=$SRC/data/mnist --train_limit=12000 --test_limit=1000 --hidden=128 --batch_size=64 --epochs=3 --optimizer=adam --lr=0.002 --log_every=0 --seed=1"
KEY="--auth_key_file=$MN_TMP/job.key"
TJ_PORT=29700

# bare_job LAYOUT(5 node names) LOG FLAGS...: 1 coordinator, 2 servers, 2 workers, one
# process per listed node, waits for all; the summary goes to LOG.
bare_job() {
  local layout=($1) log="$2" r pids=()
  shift 2
  TJ_PORT=$((TJ_PORT + 1))
  for r in 0 1 2 3 4; do
    tj_bare "${layout[$r]}" "$r" 5 "$log.r$r" "$@"
    pids+=($!)
  done
  for r in "${pids[@]}"; do wait "$r" || true; done
  cat "$log".r* > "$log"
}

echo "## 1. MNIST samples/s by placement (2 servers, 2 workers, bsp, --auth=mac)"
echo
echo "| run | loopback, no namespaces | all on tn1 | servers on tn2, tn3 (coordinator and workers on tn1) | other nodes / one node |"
echo "|--:|--:|--:|--:|--:|"
for i in $(seq "$REPEATS"); do
  rm -f "$MN_TMP/lo.key"
  "$T" launch --servers 2 --workers 2 $MNIST > "$MN_TMP/lo.log" 2>&1
  bare_job "tn1 tn1 tn1 tn1 tn1" "$MN_TMP/one.log" "$T" train --servers 2 --workers 2 "$KEY" $MNIST
  bare_job "tn1 tn2 tn3 tn1 tn1" "$MN_TMP/split.log" "$T" train --servers 2 --workers 2 "$KEY" $MNIST
  lo="$(tj_field "$MN_TMP/lo.log" samples_per_sec)"
  one="$(tj_field "$MN_TMP/one.log" samples_per_sec)"
  split="$(tj_field "$MN_TMP/split.log" samples_per_sec)"
  echo "| $i | $lo | $one | $split | $(awk -v a="$split" -v b="$one" 'BEGIN{printf "%.2f", a/b}') |"
done
echo

echo "## 2. Set-up time: mpirun start to the coordinator's \"training starts\" (s)"
echo
echo "| ranks | placement | run | set-up s | whole job s |"
echo "|--:|---|--:|--:|--:|"
for n in 5 9; do
  hosts="tn1:2,tn2:1,tn3:2"; [ "$n" = 9 ] && hosts="tn1:3,tn2:3,tn3:3"
  servers=2; [ "$n" = 9 ] && servers=4
  for i in $(seq "$REPEATS"); do
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    mn_mpirun 300 --host "$hosts" -np "$n" --oversubscribe $(tj_forward_env) "$T" train --servers "$servers" "$KEY" $MNIST \
      > "$MN_TMP/setup.log" 2>&1 || { tail -5 "$MN_TMP/setup.log"; mn_fail "mpirun with $n ranks failed"; }
    t2=$(date +%s.%N)
    # glog's time of day of the first "training starts", against t0's.
    ts="$(grep -m1 "training starts" "$MN_TMP/setup.log" | awk '{print $2}')"
    setup="$(awk -v t="$ts" -v t0="$t0" 'BEGIN{split(t,a,":"); s=a[1]*3600+a[2]*60+a[3]; d=t0-86400*int(t0/86400); printf "%.2f", s-d}')"
    echo "| $n | $hosts | $i | $setup | $(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.2f", b-a}') |"
  done
done
echo

echo "## 3. Dense push+pull between two nodes (worker on tn1, server on tn2) vs raw ZeroMQ between them"
echo
echo "| payload | raw ZeroMQ GB/s | Tessera GB/s, --auth=mac (default) | Tessera GB/s, --auth=none | none / raw | mac / raw |"
echo "|--:|--:|--:|--:|--:|--:|"
for bytes in 4096 1048576 67108864; do
  iters=300; [ "$bytes" -ge 67108864 ] && iters=10; [ "$bytes" = 1048576 ] && iters=100
  port=$((29800 + RANDOM % 100))
  # The subnet may differ from 10.77.0.0/24 (cluster.sh picks a free one): node 2's address.
  addr2="$(echo "$TESSERA_MN_ADDRS" | awk '{print $2}')"
  mn_exec tn2 "$P" --bench_mode=baseline --bytes="$bytes" --iters="$iters" --echo_bind="tcp://$addr2:$port" \
    > "$MN_TMP/echo.log" 2>&1 &
  epid=$!
  sleep 0.5
  raw="$(mn_exec tn1 "$P" --bench_mode=baseline --bytes="$bytes" --iters="$iters" --echo_connect="tcp://$addr2:$port" |
         grep -o 'zmq_gbps=[0-9.]*' | cut -d= -f2)"
  wait "$epid" || true
  row=()
  for auth in "$KEY" --auth=none; do
    bare3=(tn1 tn2 tn1)
    TJ_PORT=$((TJ_PORT + 1))
    pids=()
    for r in 0 1 2; do
      tj_bare "${bare3[$r]}" "$r" 3 "$MN_TMP/dense.r$r" "$P" --servers 1 --workers 1 --sync=asp "$auth" \
        --bench_mode=dense --bytes="$bytes" --iters="$iters" --chunk_bytes=$(( bytes > 1048576 ? 16777216 : 1048576 ))
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    row+=("$(grep -ho 'gbps=[0-9.]*' "$MN_TMP"/dense.r* | head -1 | cut -d= -f2)")
  done
  echo "| $bytes | $raw | ${row[0]} | ${row[1]} | $(awk -v a="${row[1]}" -v b="$raw" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="${row[0]}" -v b="$raw" 'BEGIN{printf "%.2f", a/b}') |"
done
mn_pass "multinode bench"
