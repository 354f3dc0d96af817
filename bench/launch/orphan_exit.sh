#!/usr/bin/env bash
# The NoOrphans scenario (tests/launch/hpc_job_test.cc) timed: a bare job of 1
# coordinator, 2 servers and 2 workers; once it logs step 20 the coordinator is
# SIGKILLed, and the script prints the seconds from the kill until no process of the job
# is left. Several builds alternate round by round, so a shared machine's noise falls on
# each alike.
#   bench/launch/orphan_exit.sh ROUNDS "EXTRA FLAGS" BUILD_DIR [BUILD_DIR...]
# prints one line per run: "round build seconds". ORPHAN_LOG=FILE keeps the last job's output.
set -u
rounds=$1 extra=$2
shift 2
data="$(cd "$(dirname "$0")/../.." && pwd)/data/mnist"
flags="--train_limit=2000 --test_limit=100 --hidden=32 --batch_size=16 --steps=1000000 --log_every=10"
flags+=" --heartbeat_interval_s=0.25 --heartbeat_timeout_s=3 --data=$data $extra"

# Processes whose environment carries ORPHAN_MARK=$1.
marked() { grep -lsz "^ORPHAN_MARK=$1\$" /proc/[0-9]*/environ 2>/dev/null | wc -l; }

run_once() {  # build_dir -> seconds from the kill to the last process gone
  local bin=$1/launch/tessera mark="orphan-$$-$RANDOM" port log
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp)
  local env="ORPHAN_MARK=$mark TESSERA_WORLD_SIZE=5 TESSERA_COORDINATOR_PORT=$port TESSERA_JOB_ID=77"
  for r in 0 1 2 3 4; do
    # shellcheck disable=SC2086
    env TESSERA_RANK=$r $env "$bin" train --servers 2 $flags >>"$log" 2>&1 &
    [ "$r" = 0 ] && coord=$!
  done
  for ((i = 0; i < 600; i++)); do grep -q "step 20/" "$log" && break; sleep 0.1; done
  local t0 t1
  kill -9 "$coord"
  t0=$(date +%s.%N)
  for ((i = 0; i < 1200 && $(marked "$mark") > 0; i++)); do sleep 0.05; done
  t1=$(date +%s.%N)
  wait 2>/dev/null
  if [ -n "${ORPHAN_LOG:-}" ]; then cp "$log" "$ORPHAN_LOG"; fi
  rm -f "$log"
  echo "$t1 - $t0" | bc
}

for ((round = 1; round <= rounds; round++)); do
  for b in "$@"; do echo "$round $b $(run_once "$b")"; done
done
