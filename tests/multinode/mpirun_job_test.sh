#!/usr/bin/env bash
# Real mpirun across 3 nodes (network namespaces with their own addresses and host names,
# tests/multinode/cluster.sh), with the flags a user passes on a real cluster: a job key
# file and nothing else. Ranks 0-1 on tn1, 2 on tn2, 3-4 on tn3.
#   1. bsp: the MLP reaches its threshold; every server advertises its node's address;
#      rank 0's endpoint came through MPI; the parameters are bitwise those of the same
#      job on one host.
#   2. --sync=allreduce (MPI's TCP transport across the nodes): same checks.
#   3. --sync=hybrid widedeep (tables on the servers, dense all-reduce): AUC threshold and
#      the one-host digest.
# Usage: mpirun_job_test.sh BUILD_DIR   (ctest label multinode)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
. "$HERE/job_lib.sh"
mn_require
mn_setup 3

MNIST=" --data=$SRC/data/mnist --train_limit=12000 --test_limit=2000 --hidden=128 --batch_size=64 --epochs=3 --optimizer=adam --lr=0.002 --log_every=0 --seed=1"
WIDEDEEP=" --flagfile=$SRC/examples/widedeep_a9a.flags --data=$SRC/data/a9a --epochs=1 --train_limit=8000 --test_limit=2000 --log_every=0"

# case NAME SERVERS FLAGS MIN_FIELD MIN_VALUE
run_case() {
  local name="$1" servers="$2" flags="$3" field="$4" min="$5"
  mn_log "$name: on one host (reference)"
  mn_run 300 mpirun -np 5 --oversubscribe --bind-to none --mca btl self,vader \
    "$BUILD/launch/tessera" train --servers "$servers" $flags > "$MN_TMP/$name.ref.log" 2>&1 ||
    { tail -20 "$MN_TMP/$name.ref.log"; mn_fail "$name: the one-host reference run failed"; }
  mn_log "$name: across tn1:2 tn2:1 tn3:2"
  local t0 t1
  t0=$(date +%s.%N)
  mn_mpirun 300 --host tn1:2,tn2:1,tn3:2 -np 5 --oversubscribe $(tj_forward_env) \
    "$BUILD/launch/tessera" train --servers "$servers" --auth_key_file="$MN_TMP/job.key" $flags \
    > "$MN_TMP/$name.log" 2>&1 || { tail -30 "$MN_TMP/$name.log"; mn_fail "$name: the job across nodes failed"; }
  t1=$(date +%s.%N)
  local log="$MN_TMP/$name.log"
  tj_expect "$log" "published by rank 0 through MPI; all 5 ranks agree on the job" "$name: endpoint through MPI"
  tj_expect "$log" "auth=mac: every message authenticated" "$name: --auth=mac (the default with a key file)"
  # Each process listens on and advertises its own node's address (rank 0 and server 0 on
  # tn1, rank 2 on tn2, ranks 3-4 on tn3), never 0.0.0.0/127.x.
  tj_expect "$log" "\[server 0\] .*network: the job spans hosts .*advertised as ${TESSERA_MN_SUBNET%.*/*}\.1 " "$name: server 0 on tn1"
  local addrs
  addrs="$(grep -Eo 'network: the job spans hosts .*advertised as [0-9.]+' "$log" | grep -Eo '[0-9.]+$' | sort -u | tr '\n' ' ')"
  [ "$addrs" = "$TESSERA_MN_ADDRS " ] || mn_fail "$name: advertised addresses '$addrs', expected the nodes' '$TESSERA_MN_ADDRS'"
  if grep -E "advertised as (0\.0\.0\.0|127\.)" "$log"; then mn_fail "$name: a wildcard or loopback address was advertised"; fi
  [ "$(tj_field "$log" sync)" = "$name" ] || mn_fail "$name: the job ran --sync=$(tj_field "$log" sync)"
  tj_expect_min "$log" "$field" "$min" "$name"
  local ref got
  ref="$(tj_field "$MN_TMP/$name.ref.log" params_digest)"
  got="$(tj_field "$log" params_digest)"
  [ -n "$got" ] && [ "$got" = "$ref" ] || mn_fail "$name: params_digest $got across nodes, $ref on one host"
  mn_log "$name: OK ($field $(tj_field "$log" "$field"), digest $got as on one host, $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"
}

run_case bsp 2 "$MNIST" test_accuracy 0.90
run_case allreduce 1 "$MNIST --sync=allreduce" test_accuracy 0.90
run_case hybrid 2 "$WIDEDEEP --sync=hybrid" test_auc 0.86
mn_pass "bsp, allreduce and hybrid across 3 nodes under real mpirun"
