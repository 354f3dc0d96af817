#!/usr/bin/env bash
# Starts a private one-node Slurm cluster on this machine for tests and CI: its own
# munged (own key and socket), slurmctld and slurmd, every file under one directory,
# nothing in /etc used. Installs slurm-wlm and munge (scripts/setup.sh --with-slurm)
# when they are missing. Idempotent: when the cluster under $BASE is already up it
# says so and exits 0. Stop it with scripts/slurm-down.sh.
#
# Usage: scripts/slurm-up.sh
# Environment: TESSERA_SLURM_BASE (default /tmp/tessera-slurm),
#              TESSERA_SLURM_CTLD_PORT (6817), TESSERA_SLURM_SLURMD_PORT (6818)
# Afterwards:  source "$BASE/env.sh"   (exports SLURM_CONF; every Slurm client needs it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${TESSERA_SLURM_BASE:-/tmp/tessera-slurm}"
CTLD_PORT="${TESSERA_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${TESSERA_SLURM_SLURMD_PORT:-6818}"
NODE=localhost   # slurmd runs with -N localhost: the VM's hostname is not resolvable everywhere

for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || { bash "$ROOT/scripts/setup.sh" --with-slurm; break; }
done
export SLURM_CONF="$BASE/etc/slurm.conf"
LOCK_WAIT_S="${TESSERA_SLURM_LOCK_WAIT_S:-90}"

fail() {
  echo "slurm-up: FAILED: $*" >&2
  tail -n 5 "$BASE"/log/*.log >&2 2>/dev/null || true
  echo "slurm-up: clean up with: TESSERA_SLURM_BASE=$BASE $ROOT/scripts/slurm-down.sh --purge" >&2
  exit 1
}
# The pid in a pid file when that process is alive and is the daemon named (a recycled
# pid of some other program does not count).
live_pid() {  # pid-file daemon-name
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}
# Up = our controller and node daemon run, and the node can take jobs.
is_up() {
  live_pid "$BASE/run/slurmctld.pid" slurmctld >/dev/null && live_pid "$BASE/run/slurmd.$NODE.pid" slurmd >/dev/null &&
    case "$(timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null)" in idle|mixed|allocated|completing) true ;; *) false ;; esac
}
if is_up; then echo "slurm-up: already up under $BASE"; exit 0; fi

mkdir -p "$BASE"
# Two callers at once (parallel tests) start one cluster: the second waits, then finds
# it up. The daemons below start with this fd closed (9>&-): a daemon that inherited it
# would hold the lock for as long as it runs, and every later slurm-up would hang.
exec 9>"$BASE/.up.lock"
if ! flock -w "$LOCK_WAIT_S" 9; then
  holders=""
  for h in $(fuser "$BASE/.up.lock" 2>/dev/null); do
    [ "$h" = $$ ] || holders+=" $h ($(cat "/proc/$h/comm" 2>/dev/null || echo gone))"
  done
  fail "$BASE/.up.lock still held after ${LOCK_WAIT_S} s (open in:${holders:- no process found}): another slurm-up is" \
       "starting this cluster, or daemons started by an older slurm-up hold it; stop them with" \
       "TESSERA_SLURM_BASE=$BASE $ROOT/scripts/slurm-down.sh --purge"
fi
if is_up; then echo "slurm-up: already up under $BASE"; exit 0; fi

# Not up: whatever is left under $BASE is stale (daemons of a half-started or half-dead
# cluster, a node that is down, pid files of dead processes). Stop our own daemons by
# their pid files (never anything else) and start afresh.
if ls "$BASE"/run/*.pid >/dev/null 2>&1; then
  echo "slurm-up: stale cluster state under $BASE ($(cd "$BASE/run" && echo *.pid)): stopping it first"
  TESSERA_SLURM_BASE="$BASE" bash "$ROOT/scripts/slurm-down.sh" 9>&- >/dev/null 2>&1 || true
fi
# The ports must be free: another cluster (another base, another session) would make our
# daemons fail with a bind error deep in their logs.
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
  owner="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -1)"
  if [ -n "$owner" ]; then
    fail "port $port is in use by something not under $BASE (${owner##* }): stop it, or choose other ports with" \
         "TESSERA_SLURM_CTLD_PORT / TESSERA_SLURM_SLURMD_PORT"
  fi
done

mkdir -p "$BASE"/{etc,state,spool,run,log,munge}
chmod 0755 "$BASE/munge"   # munged warns "Socket is inaccessible" on 0700
for f in "$BASE"/log/*.log; do [ -e "$f" ] && mv -f "$f" "$f.prev"; done

# 1. munge with a private key and socket (the system's /etc/munge is left alone).
[ -s "$BASE/munge/munge.key" ] || dd if=/dev/urandom of="$BASE/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$BASE/munge/munge.key"
munged --force --key-file="$BASE/munge/munge.key" --socket="$BASE/munge/munge.socket" \
  --pid-file="$BASE/run/munged.pid" --log-file="$BASE/log/munged.log" --seed-file="$BASE/munge/munged.seed" 9>&- ||
  fail "munged did not start"
for _ in $(seq 50); do [ -S "$BASE/munge/munge.socket" ] && break; sleep 0.1; done
munge -n -S "$BASE/munge/munge.socket" | unmunge -S "$BASE/munge/munge.socket" >/dev/null || fail "munge round trip"

# 2. slurm.conf. The node line is what slurmd itself detects (a hand-written CPUs= makes
#    slurmd complain about socket/core boundaries); memory 90 % of it so the node is
#    not drained for having less than configured.
NODE_HW="$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')"
MEM="$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) * 9 / 10 ))"
cat > "$SLURM_CONF" <<CONF
# One-node Slurm 22.05 for Tessera's tests, written by scripts/slurm-up.sh.
ClusterName=tessera
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also the delay before a requeued job may start again (default 120 s).
AuthInfo=socket=$BASE/munge/munge.socket,cred_expire=10
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd.%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.%n.log
PlugStackConfig=$BASE/etc/plugstack.conf
MailProg=/bin/true
# No cgroups in this VM's setup: plain process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
# Debian's Open MPI 4.1 works with srun only through PMIx.
MpiDefault=pmix
SchedulerType=sched/backfill
# Short scheduler passes: a requeued job starts again within seconds, not a minute.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
# TERM (scontrol requeue, scancel, preemption without a user signal) to SIGKILL: the time
# a job has to checkpoint. Slurm's default; 10 s was too short on a loaded 2-core VM.
KillWait=30
MinJobAge=600
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
NodeName=$NODE NodeAddr=127.0.0.1 $NODE_HW RealMemory=$MEM State=UNKNOWN
# Preemption by partition priority requeues the victim; it first gets its own --signal
# (22.05 spelling of the option; 23.02 moved it to PreemptParameters=send_user_signal).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
PartitionName=debug  Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=urgent Nodes=$NODE Default=NO  MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
CONF
: > "$BASE/etc/plugstack.conf"
echo "export SLURM_CONF=$SLURM_CONF" > "$BASE/env.sh"

# 3. The daemons fork into the background and write their pid files.
slurmctld -c -f "$SLURM_CONF" 9>&- || fail "slurmctld did not start"   # -c: forget old jobs
slurmd -f "$SLURM_CONF" -N "$NODE" 9>&- || fail "slurmd did not start"

# 4. Usable once the node is idle.
st=""
for _ in $(seq 150); do
  st="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
  [ "$st" = idle ] && break
  sleep 0.2
done
[ "$st" = idle ] || fail "node state '$st' after 30 s (see $BASE/log)"
echo "slurm-up: up under $BASE (munged $(cat "$BASE/run/munged.pid"), slurmctld $(cat "$BASE/run/slurmctld.pid"), slurmd $(cat "$BASE/run/slurmd.$NODE.pid")); source $BASE/env.sh"
