#!/usr/bin/env bash
# Node-level faults on a 3-node cluster (tests/multinode/cluster.sh), with no launcher
# watching the processes (each rank started on its node with the TESSERA_* variables,
# as under a lost srun), so only Tessera's own detection can tell:
#   1. a node dies (every process on tn3 SIGKILLed at once): the coordinator names the
#      node and its ranks within the heartbeat bound; the newest checkpoint is intact and
#      the job, rerun on the remaining nodes with one server fewer, resumes from it
#      (resharded) to the parameters of an uninterrupted run.
#   2. a partition between tn1 (coordinator) and tn3: the same naming, exit code 3.
#   3. a node whose --checkpoint_dir is node-local (a private mount): refused at start,
#      naming that node; nothing trains.
#   4. the same for the job key file (--auth_key_file on node-local storage).
# Usage: fault_job_test.sh BUILD_DIR   (ctest label multinode)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
T="$BUILD/launch/tessera"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
. "$HERE/job_lib.sh"
mn_require
mn_setup 3

HB=" --heartbeat_interval_s=0.25 --heartbeat_timeout_s=3"
JOB=" --data=$SRC/data/mnist --train_limit=2000 --test_limit=200 --hidden=32 --batch_size=16 --log_every=10 --deterministic --seed=3$HB"
TJ_PORT=29611

# start_job NAME SERVERS WORKERS FLAGS: ranks 0-1 on tn1, 2 on tn2, the rest on tn3 (with
# 2 servers and 2 workers: coordinator and server 0 on tn1, server 1 on tn2, both workers
# on tn3); pids in PIDS, logs $MN_TMP/NAME.rR.
start_job() {
  local name="$1" s="$2" w="$3" flags="$4" world=$(( 1 + $2 + $3 )) r
  local nodes=(tn1 tn1 tn2)
  PIDS=()
  for r in $(seq 0 $(( world - 1 ))); do
    tj_bare "${nodes[$r]:-tn3}" "$r" "$world" "$MN_TMP/$name.r$r" "$T" train --servers "$s" --workers "$w" \
      --auth_key_file="$MN_TMP/job.key" $flags
    PIDS+=($!)
  done
}
# wait_all: waits for every process of PIDS; the coordinator's exit code goes to RC (not
# printed: a command substitution would wait in a subshell, which has no such children).
wait_all() {
  local p
  RC=0
  wait "${PIDS[0]}" || RC=$?
  for p in "${PIDS[@]:1}"; do wait "$p" || true; done
}

mn_log "reference: the uninterrupted job on one host"
mn_run 300 "$T" launch --servers 2 --workers 2 --grace_s 2 $JOB --steps=6000 > "$MN_TMP/ref.log" 2>&1 ||
  { tail -20 "$MN_TMP/ref.log"; mn_fail "the reference run failed"; }
ref="$(tj_field "$MN_TMP/ref.log" params_digest)"

mn_log "1: tn3 (both workers) dies mid-run"
start_job kill 2 2 "$JOB --steps=6000 --checkpoint_dir=$MN_TMP/ckpt --checkpoint_every_steps=200"
# Any committed checkpoint: one still being written when its successor is due is
# skipped (CI once took 0.5 s for step 200 and never wrote 400), so no step is certain.
mn_wait_log "$MN_TMP/kill.r0" "checkpoint of step [0-9]+ committed" 120 || mn_fail "1: no committed checkpoint"
t0=$(date +%s.%N)
bash "$HERE/cluster.sh" kill tn3 >/dev/null
wait_all; rc=$RC
t1=$(date +%s.%N)
took="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
[ "$rc" = 3 ] || { tail -5 "$MN_TMP/kill.r0"; mn_fail "1: coordinator exit code $rc, expected 3 (peer failure)"; }
tj_expect "$MN_TMP/kill.r0" "job failed: Unavailable: node tn3 is down or unreachable: none of its 2 processes \(worker 0 \(rank 3\), worker 1 \(rank 4\)\) sent a heartbeat for 3.0 s: declared dead; the newest complete checkpoint is step" "1: the dead node named"
awk -v t="$took" 'BEGIN{exit !(t < 3 + 6)}' || mn_fail "1: the job took $took s to end after the node died (heartbeat timeout 3 s)"
mn_log "1: named tn3 and its ranks; every process gone $took s after the kill"
# The remaining nodes: 1 server instead of 2 (the checkpoint reshards), same 2 workers.
bash "$HERE/cluster.sh" heal tn1 tn3 >/dev/null 2>&1 || true
TJ_PORT=29612
PIDS=()
tj_bare tn1 0 4 "$MN_TMP/resume.r0" "$T" train --servers 1 --workers 2 --auth_key_file="$MN_TMP/job.key" $JOB --steps=6000 --checkpoint_dir="$MN_TMP/ckpt"
PIDS+=($!)
tj_bare tn2 1 4 "$MN_TMP/resume.r1" "$T" train --servers 1 --workers 2 --auth_key_file="$MN_TMP/job.key" $JOB --steps=6000 --checkpoint_dir="$MN_TMP/ckpt"
PIDS+=($!)
for r in 2 3; do
  tj_bare tn2 "$r" 4 "$MN_TMP/resume.r$r" "$T" train --servers 1 --workers 2 --auth_key_file="$MN_TMP/job.key" $JOB --steps=6000 --checkpoint_dir="$MN_TMP/ckpt"
  PIDS+=($!)
done
wait_all; rc=$RC
[ "$rc" = 0 ] || { tail -10 "$MN_TMP/resume.r0"; mn_fail "1: the rerun on tn1, tn2 exited $rc"; }
tj_expect "$MN_TMP/resume.r0" "resuming from the checkpoint of step [0-9]+ .*made by 2 servers; 1 servers now" "1: resumed, resharded"
got="$(cat "$MN_TMP"/resume.r* | grep -o 'summary: {.*}' | tail -1 | grep -o '"params_digest":"[0-9a-f]*"' | cut -d'"' -f4)"
[ "$got" = "$ref" ] || mn_fail "1: resumed on the remaining nodes: digest $got, uninterrupted $ref"
mn_log "1: resumed on tn1+tn2 with 1 server; digest equals the uninterrupted run"

mn_log "2: partition tn1 | tn3"
TJ_PORT=29613
start_job part 2 2 "$JOB --steps=1000000"
mn_wait_log "$MN_TMP/part.r3" "step 40/" 120 || mn_fail "2: the job did not train"
bash "$HERE/cluster.sh" partition tn1 tn3 >/dev/null
t0=$(date +%s.%N)
wait_all; rc=$RC
bash "$HERE/cluster.sh" heal tn1 tn3 >/dev/null
[ "$rc" = 3 ] || { tail -5 "$MN_TMP/part.r0"; mn_fail "2: coordinator exit code $rc, expected 3"; }
tj_expect "$MN_TMP/part.r0" "node tn3 is down or unreachable: none of its 2 processes" "2: the partitioned node named"
mn_log "2: named tn3 after the partition"

mn_log "3: tn2's --checkpoint_dir is node-local"
TJ_PORT=29614
PIDS=()
tj_bare tn1 0 4 "$MN_TMP/priv.r0" "$T" train --servers 2 --workers 1 --auth_key_file="$MN_TMP/job.key" $JOB --steps=50 --register_timeout_s=10 --checkpoint_dir=/tmp/tessera-mn-local-ckpt
PIDS+=($!)
for r in 1 2 3; do
  node=tn3
  [ "$r" = 2 ] && node=tn2
  TESSERA_RANK="$r" TESSERA_WORLD_SIZE=4 TESSERA_COORDINATOR_HOST=tn1 TESSERA_COORDINATOR_PORT="$TJ_PORT" TESSERA_JOB_ID=4711 \
    mn_exec --private /tmp/tessera-mn-local-ckpt "$node" "$T" train --servers 2 --workers 1 --auth_key_file="$MN_TMP/job.key" $JOB \
      --steps=50 --register_timeout_s=10 --checkpoint_dir=/tmp/tessera-mn-local-ckpt > "$MN_TMP/priv.r$r" 2>&1 &
  PIDS+=($!)
done
wait_all; rc=$RC
[ "$rc" = 2 ] || { tail -5 "$MN_TMP/priv.r0"; mn_fail "3: coordinator exit code $rc, expected 2 (configuration)"; }
tj_expect "$MN_TMP/priv.r0" "failed: node tn[23] cannot see /tmp/tessera-mn-local-ckpt/.tessera-marker-[0-9a-f]+, which rank 0 wrote into --checkpoint_dir" "3: the node named"
if grep -q "summary: {" "$MN_TMP"/priv.r*; then mn_fail "3: a job with a node-local checkpoint directory trained"; fi
rm -rf /tmp/tessera-mn-local-ckpt

mn_log "4: the job key file is node-local on tn2 and tn3"
TJ_PORT=29615
rm -rf /tmp/tessera-mn-local-key
PIDS=()
for r in 0 1 2 3; do
  node=tn1
  [ "$r" = 2 ] && node=tn2
  [ "$r" = 3 ] && node=tn3
  private=()
  [ "$node" != tn1 ] && private=(--private /tmp/tessera-mn-local-key)
  TESSERA_RANK="$r" TESSERA_WORLD_SIZE=4 TESSERA_COORDINATOR_HOST=tn1 TESSERA_COORDINATOR_PORT="$TJ_PORT" TESSERA_JOB_ID=4711 \
    mn_exec "${private[@]}" "$node" "$T" train --servers 2 --workers 1 --auth_key_file=/tmp/tessera-mn-local-key/job.key \
      $JOB --steps=50 --register_timeout_s=5 > "$MN_TMP/key.r$r" 2>&1 &
  PIDS+=($!)
done
wait_all
tj_expect "$MN_TMP/key.r2" "node tn2 cannot see --auth_key_file /tmp/tessera-mn-local-key/job.key, which rank 0 creates" "4: tn2 named"
tj_expect "$MN_TMP/key.r3" "node tn3 cannot see --auth_key_file /tmp/tessera-mn-local-key/job.key, which rank 0 creates" "4: tn3 named"
if grep -q "summary: {" "$MN_TMP"/key.r*; then mn_fail "4: a job with a node-local key file trained"; fi
rm -rf /tmp/tessera-mn-local-key
mn_pass "dead node, partition, node-local checkpoint directory and key file across 3 nodes"
