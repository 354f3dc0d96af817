#!/usr/bin/env bash
# The unchanged batch template (launch/slurm/tessera.sbatch) on a real 3-node Slurm: one
# slurmd per node namespace, slurmctld on the host side (tests/multinode/slurm_cluster.sh).
#   1. 3 nodes, 5 tasks: trains to the end; servers on different nodes advertise their
#      own node's address; the coordinator comes from the step's node list.
#   2. 2 nodes (tn1, tn2): preempted with USR1 mid-training: checkpoints, exits 75, the
#      template requeues it; the requeued run is sent to tn2 and tn3, resumes from the
#      checkpoint on the shared directory, and ends with parameters bitwise equal to the
#      uninterrupted run of 1.
# Usage: slurm_job_test.sh BUILD_DIR   (ctest label multinode)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
. "$HERE/job_lib.sh"
mn_require
mn_setup 3 --slurm

JOB=" --data=$SRC/data/mnist --train_limit=2000 --test_limit=200 --hidden=32 --batch_size=16 --steps=2000 --log_every=10 --deterministic --seed=3 --checkpoint_every_steps=50 --register_timeout_s=30"

# submit NAME SBATCH-ARGS...: prints the job id.
submit() {
  local name="$1"
  shift
  (cd "$MN_TMP" && TESSERA="$BUILD/launch/tessera" TESSERA_SERVERS=2 TESSERA_TRAIN_FLAGS="$JOB" \
     TESSERA_CHECKPOINT_DIR="$MN_TMP/ckpt-$name" TESSERA_AUTH_KEY_FILE="$MN_TMP/keys/$name.key" \
     timeout 60 sbatch --parsable --ntasks=5 --overcommit --cpus-per-task=1 --time=10 \
       --output="$MN_TMP/$name.out" "$@" "$SRC/launch/slurm/tessera.sbatch") | cut -d';' -f1
}
state() { scontrol -o show job "$1" 2>/dev/null | grep -o ' JobState=[A-Z_]*' | cut -d= -f2; }
field() { scontrol -o show job "$1" 2>/dev/null | grep -o " $2=[^ ]*" | cut -d= -f2-; }
wait_end() {  # ID SECONDS
  local deadline=$(( $(date +%s) + $2 )) s
  while [ "$(date +%s)" -lt "$deadline" ]; do
    s="$(state "$1")"
    case "$s" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "$s"; return 0 ;; esac
    sleep 0.5
  done
  echo "still ${s:-unknown}"
}

mn_log "1: the template on 3 nodes, uninterrupted"
a="$(submit full --nodes=3)"
[ -n "$a" ] || mn_fail "sbatch failed"
st="$(wait_end "$a" 240)"
[ "$st" = COMPLETED ] || { tail -40 "$MN_TMP/full.out"; mn_fail "job $a on 3 nodes ended $st"; }
tj_expect "$MN_TMP/full.out" "on tn\[1-3\]" "1: allocation of 3 nodes"
tj_expect "$MN_TMP/full.out" "coordinator host from first host of SLURM_STEP_NODELIST, port derived from SLURM_JOB_ID and SLURM_STEP_ID" "1: step node list"
tj_expect "$MN_TMP/full.out" "\[server 0 .*advertised as 10\.[0-9.]*\.[123] " "1: server 0 advertises its node"
servers="$(grep -Eo '\[server [01] [^]]*\] .*advertised as [0-9.]+' "$MN_TMP/full.out" | grep -Eo '[0-9.]+$' | sort -u | wc -l)"
if grep -E "advertised as (0\.0\.0\.0|127\.)" "$MN_TMP/full.out"; then mn_fail "1: a wildcard or loopback address was advertised"; fi
digest="$(tj_field "$MN_TMP/full.out" params_digest)"
[ ${#digest} = 16 ] || { tail -20 "$MN_TMP/full.out"; mn_fail "1: no params_digest"; }
mn_log "1: COMPLETED on tn[1-3], servers on $servers distinct addresses, digest $digest"

mn_log "2: on tn1,tn2, preempted (USR1), requeued onto tn2,tn3"
b="$(submit pre --nodes=2 --nodelist=tn1,tn2)"
[ -n "$b" ] || mn_fail "sbatch failed"
mn_wait_log "$MN_TMP/pre.out" "step 200/" 120 || mn_fail "2: job $b did not reach step 200"
scancel --signal=USR1 --batch "$b" || mn_fail "2: scancel --signal=USR1 failed"
mn_wait_log "$MN_TMP/pre.out" "exited with code 75" 90 || mn_fail "2: no checkpoint-and-exit (75) after USR1"
# The template requeues itself; hold the job while it waits (it may start again within
# seconds), send it to two other nodes (one of them new), release it and make it eligible
# now instead of after Slurm's requeue delay.
mn_wait_log "$MN_TMP/pre.out" "requeueing $b" 30 || mn_fail "2: the template did not requeue the job"
is_pending() { [ "$(state "$1")" = PENDING ]; }   # re-read at every poll of mn_wait_cmd
mn_wait_cmd 30 is_pending "$b" || mn_fail "2: the requeued job is $(state "$b"), not pending"
mn_wait_cmd 20 scontrol hold "$b" || mn_fail "2: cannot hold the requeued job (state $(state "$b"))"
[ "$(field "$b" Restarts)" = 1 ] || mn_fail "2: Restarts=$(field "$b" Restarts) after the requeue"
err="$(scontrol update JobId="$b" ReqNodeList=tn2,tn3 2>&1)" || mn_fail "2: cannot move the job to tn2,tn3: $err"
scontrol release "$b" || mn_fail "2: cannot release the job"
sleep 2.1
scontrol update JobId="$b" StartTime=now || true
st="$(wait_end "$b" 240)"
[ "$st" = COMPLETED ] || { tail -40 "$MN_TMP/pre.out"; mn_fail "2: the requeued job ended $st"; }
tj_expect "$MN_TMP/pre.out" "SLURM_RESTART_COUNT=0, on tn\[1-2\]" "2: first run on tn1,tn2"
tj_expect "$MN_TMP/pre.out" "SLURM_RESTART_COUNT=1, on tn\[2-3\]" "2: requeued run on tn2,tn3"
tj_expect "$MN_TMP/pre.out" "resuming from the checkpoint of step" "2: resumed"
got="$(tj_field "$MN_TMP/pre.out" params_digest)"
[ "$got" = "$digest" ] || mn_fail "2: preempted and resumed on other nodes: digest $got, uninterrupted $digest"
mn_pass "the Slurm template across 3 nodes; preempted, requeued onto other nodes, resumed bitwise"
