#!/usr/bin/env bash
# A real multi-node Slurm 22.05 on the namespace nodes of cluster.sh (run `cluster.sh up N`
# first): its own munged (own key and socket), slurmctld on the host side as node "tctl"
# (the bridge address), and one slurmd per node inside that node's namespaces, each with
# its own address and hostname. Everything lives under $TESSERA_MN_BASE/slurm (default
# /tmp/tessera-multinode/slurm); nothing in /etc is used. Ports 6827 (slurmctld) and 6828
# (slurmd), not scripts/slurm-up.sh's 6817/6818, so both clusters can run side by side.
#
# Usage:
#   slurm_cluster.sh up            start (idempotent: says so when already up); then
#                                  source $TESSERA_MN_BASE/slurm/env.sh (exports SLURM_CONF)
#   slurm_cluster.sh down          cancel jobs, stop slurmd/slurmctld/munged by pid file
#                                  (TERM, KILL after 10 s), kill leftover slurmstepds, delete
#                                  the directory; fine when nothing is up
#   slurm_cluster.sh status        sinfo + squeue
#   slurm_cluster.sh drain NODE    no new jobs on NODE (running ones stay)
#   slurm_cluster.sh resume NODE   undo drain (also brings a DOWN node back once its slurmd runs)
#   slurm_cluster.sh start-node NODE  start NODE's slurmd again (after `cluster.sh kill NODE`)
# Environment: TESSERA_MN_BASE, TESSERA_MN_SLURM_CTLD_PORT (6827), TESSERA_MN_SLURMD_PORT
#   (6828), TESSERA_MN_SLURMD_TIMEOUT (30: seconds before a dead node is DOWN and its jobs
#   requeued), TESSERA_MN_PRIVATE (see cluster.sh: node-local directories for the slurmds
#   and so for every job step).
#
# Cluster: NodeName=tnK NodeAddr=<its address> CPUs=2 RealMemory=2000 (whatever the machine
# has: every node shares it). Partitions, all on every node: debug (default,
# OverSubscribe=FORCE:4: jobs share CPUs and never wait for each other, never preempted);
# lo and urgent (no sharing; an urgent job preempts lo jobs in its way by requeue, sending
# the job's --signal first, TERM after GraceTime=10). MpiDefault=none: srun runs plain
# programs; MPI programs use `mpirun` inside the allocation, or `srun --mpi=pmix`.
# JobRequeue=1, cred_expire=10 + sched_interval=5: a requeued job runs again in ~15 s.
#
# Requeue on other nodes (verified): `scontrol requeue J` keeps the job's ExcNodeList
# (sbatch --exclude) and ReqNodeList (sbatch -w); while J is pending again they can be
# changed: `scontrol update JobId=J ExcNodeList=tn3` (ExcNodeList= clears it). Or drain a
# node (`slurm_cluster.sh drain tn2`): no job lands there until `resume`. To be sure the
# change lands before the job restarts: `scontrol requeuehold J; scontrol update ...;
# scontrol release J`. A requeued job starts again after ~15 s (cred_expire=10 plus a
# scheduler pass); a node killed with `cluster.sh kill` is set DOWN after SlurmdTimeout
# (+ up to a ping interval: 46 s with the default 30) and its jobs are requeued then.
#
# Traps:
# - slurmctld refuses to start unless its hostname matches SlurmctldHost ("This host not a
#   valid controller"): it runs in its own UTS namespace named tctl, and
#   SlurmctldHost=tctl(<bridge address>) makes every node reach it through the bridge.
# - slurmd must be entered with nsenter, not `ip netns exec` (that hides /sys/fs/cgroup).
# - munge's socket is a file, so one munged serves every namespace.
# - Clients need SLURM_CONF (else "Could not establish a configuration source").
# - The daemons must not inherit the lock fd of this script (9>&-), or a later up hangs.
# - A node whose processes were killed stays "idle" until SlurmdTimeout, then goes DOWN
#   (its jobs are requeued with JobRequeue=1); ReturnToService=2 brings it back when its
#   slurmd registers again (start-node).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SB="$MN_BASE/slurm"
CTLD_PORT="${TESSERA_MN_SLURM_CTLD_PORT:-6827}"
SLURMD_PORT="${TESSERA_MN_SLURMD_PORT:-6828}"
SLURMD_TIMEOUT="${TESSERA_MN_SLURMD_TIMEOUT:-30}"
export SLURM_CONF="$SB/etc/slurm.conf"

log() { echo "slurm_cluster: $*" >&2; }
fail() {
  echo "slurm_cluster: FAILED: $*" >&2
  tail -n 5 "$SB"/log/*.log >&2 2>/dev/null
  echo "slurm_cluster: clean up with: TESSERA_MN_BASE=$MN_BASE $0 down" >&2
  exit 1
}

load_cluster() {
  # shellcheck disable=SC1091
  . "$MN_BASE/env.sh" 2>/dev/null || fail "no namespace cluster ($MN_BASE/env.sh missing): run cluster.sh up N first"
}

# The pid in a pid file when that process is alive and is the daemon named.
live_pid() {  # pid-file daemon-name
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1")"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

nodes_state() { timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null | sort -u; }

is_up() {
  [ -f "$SLURM_CONF" ] || return 1
  live_pid "$SB/run/slurmctld.pid" slurmctld >/dev/null || return 1
  local n st
  for n in $TESSERA_MN_NODES; do
    live_pid "$SB/run/slurmd.$n.pid" slurmd >/dev/null || return 1
  done
  st="$(nodes_state)"
  for n in $TESSERA_MN_NODES; do
    echo "$st" | grep -Eq "^$n (idle|mixed|allocated|completing)" || return 1
  done
}

start_slurmd() {  # node
  # In a subshell: mn_node_exec replaces the shell; slurmd forks into the background.
  ( mn_node_exec "$1" slurmd -f "$SLURM_CONF" -N "$1" ) 9>&- || fail "slurmd on $1 did not start"
}

# Alive and not a zombie: exited daemons are reaped by init, which may take seconds here,
# and kill -0 succeeds on a zombie.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# stop DAEMON-NAME PID-FILE...: TERM to all at once, KILL what still runs after 10 s.
stop() {
  local name="$1" f pid pids=""
  shift
  for f in "$@"; do
    pid="$(live_pid "$f" "$name")" && kill -TERM "$pid" 2>/dev/null && pids+=" $pid"
    rm -f "$f"
  done
  for _ in $(seq 200); do
    local left=""
    for pid in $pids; do alive "$pid" && left+=" $pid"; done
    pids="$left"
    [ -z "$pids" ] && return 0
    sleep 0.05
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  return 0
}

cmd_down() {
  [ -d "$SB" ] || { log "not up (no $SB)"; return 0; }
  if [ -f "$SLURM_CONF" ] && live_pid "$SB/run/slurmctld.pid" slurmctld >/dev/null; then
    timeout 10 scancel --user="$(id -un)" 2>/dev/null
    for _ in $(seq 20); do [ -z "$(timeout 10 squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  stop slurmd "$SB"/run/slurmd.*.pid
  stop slurmctld "$SB/run/slurmctld.pid"
  stop munged "$SB/run/munged.pid"
  # Job steps whose jobs outlived the cancel (linuxproc does not stop them with slurmd):
  # every slurmstepd in a node namespace, with its whole process tree.
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${MN_NS_PREFIX}"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] || continue
      kill_tree "$pid"
    done
  done
  rm -rf "$SB"
  log "down"
}

kill_tree() {
  local c
  for c in $(pgrep -P "$1"); do kill_tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}

cmd_up() {
  load_cluster
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || fail "$b missing (Debian packages slurm-wlm slurmctld slurmd munge; scripts/setup.sh --with-slurm)"
  done
  if is_up; then log "already up under $SB; source $SB/env.sh"; return 0; fi
  local t0
  t0=$(date +%s%N)
  mkdir -p "$SB"
  exec 9>"$MN_BASE/.slurm.lock"
  flock -w 90 9 || fail "$MN_BASE/.slurm.lock held for 90 s by another slurm_cluster.sh"
  if is_up; then log "already up under $SB"; return 0; fi
  if ls "$SB"/run/*.pid >/dev/null 2>&1; then
    log "stale Slurm state under $SB: stopping it first"
    cmd_down 9>&- >/dev/null 2>&1
  fi
  local owner
  owner="$(ss -Hltnp "sport = :$CTLD_PORT" 2>/dev/null | head -1)"
  [ -z "$owner" ] || fail "port $CTLD_PORT is in use (${owner##* }): stop it or set TESSERA_MN_SLURM_CTLD_PORT"

  mkdir -p "$SB"/{etc,state,spool,run,log,munge}
  for n in $TESSERA_MN_NODES; do mkdir -p "$SB/tmp/$n" "$SB/spool/slurmd.$n"; done
  local n
  chmod 0755 "$SB/munge"   # munged warns "Socket is inaccessible" on 0700

  # 1. munge with a private key and socket.
  dd if=/dev/urandom of="$SB/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$SB/munge/munge.key"
  munged --force --key-file="$SB/munge/munge.key" --socket="$SB/munge/munge.socket" \
    --pid-file="$SB/run/munged.pid" --log-file="$SB/log/munged.log" --seed-file="$SB/munge/munged.seed" 9>&- ||
    fail "munged did not start"
  for _ in $(seq 50); do [ -S "$SB/munge/munge.socket" ] && break; sleep 0.1; done
  munge -n -S "$SB/munge/munge.socket" | unmunge -S "$SB/munge/munge.socket" >/dev/null || fail "munge round trip"

  # 2. slurm.conf.
  local k nodelines="" first last
  for n in $TESSERA_MN_NODES; do
    k="${n#tn}"
    nodelines+="NodeName=$n NodeAddr=${TESSERA_MN_SUBNET%.0/24}.$k CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000 State=UNKNOWN"$'\n'
  done
  first="$(echo "$TESSERA_MN_NODES" | awk '{print $1}')"
  last="$(echo "$TESSERA_MN_NODES" | awk '{print $NF}')"
  local nodelist="tn[${first#tn}-${last#tn}]"
  [ "$first" = "$last" ] && nodelist="$first"
  cat > "$SLURM_CONF" <<CONF
# Multi-node Slurm 22.05 on the namespace nodes of tests/multinode/cluster.sh,
# written by tests/multinode/slurm_cluster.sh.
ClusterName=tessera-mn
SlurmctldHost=$TESSERA_MN_CTL($TESSERA_MN_CTL_ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also the delay before a requeued job may start again (default 120 s).
AuthInfo=socket=$SB/munge/munge.socket,cred_expire=10
StateSaveLocation=$SB/state
SlurmdSpoolDir=$SB/spool/slurmd.%n
# Per node: srun --mpi=pmix puts spmix_appdir_<uid>_<job>.<step> under TmpFS, and with
# the default /tmp the nodes of one step collide there ("File exists").
TmpFS=$SB/tmp/%n
SlurmctldPidFile=$SB/run/slurmctld.pid
SlurmdPidFile=$SB/run/slurmd.%n.pid
SlurmctldLogFile=$SB/log/slurmctld.log
SlurmdLogFile=$SB/log/slurmd.%n.log
PlugStackConfig=$SB/etc/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
SlurmdTimeout=$SLURMD_TIMEOUT
KillWait=30
MinJobAge=600
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SB/log/jobcomp.txt
${nodelines}PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
# debug: the default; CPUs shared by up to 4 jobs (FORCE also overrides --exclusive), so
#   its jobs never wait for each other and are never preempted.
# lo / urgent: no sharing; an urgent job that needs CPUs held by lo jobs preempts them
#   (requeue; USR1 via --signal first, TERM after GraceTime).
PartitionName=debug  Nodes=$nodelist Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4 PriorityTier=1 PreemptMode=OFF
PartitionName=lo     Nodes=$nodelist Default=NO  MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=urgent Nodes=$nodelist Default=NO  MaxTime=INFINITE State=UP OverSubscribe=NO PriorityTier=2 PreemptMode=OFF
CONF
  : > "$SB/etc/plugstack.conf"
  echo "export SLURM_CONF=$SLURM_CONF" > "$SB/env.sh"

  # 3. Daemons (they fork into the background and write their pid files).
  # shellcheck disable=SC2016  # $1/$2 are sh's
  unshare --uts -- sh -c 'hostname "$1" && exec slurmctld -c -f "$2"' sh "$TESSERA_MN_CTL" "$SLURM_CONF" 9>&- ||
    fail "slurmctld did not start"
  for n in $TESSERA_MN_NODES; do start_slurmd "$n"; done

  # 4. Usable once every node is idle.
  local st=""
  for _ in $(seq 150); do
    st="$(nodes_state)"
    [ "$(echo "$st" | grep -c ' idle$')" = "$(echo "$TESSERA_MN_NODES" | wc -w)" ] && break
    sleep 0.2
  done
  [ "$(echo "$st" | grep -c ' idle$')" = "$(echo "$TESSERA_MN_NODES" | wc -w)" ] || fail "nodes not idle after 30 s: $(echo "$st" | tr '\n' ' ')"
  log "up in $(( ($(date +%s%N) - t0) / 1000000 )) ms: slurmctld $(cat "$SB/run/slurmctld.pid") on $TESSERA_MN_CTL:$CTLD_PORT, slurmd on $TESSERA_MN_NODES; source $SB/env.sh"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status)
    [ -f "$SLURM_CONF" ] || { echo "slurm_cluster: not up"; exit 1; }
    timeout 10 sinfo; timeout 10 squeue ;;
  drain)
    [ $# -ge 2 ] || fail "usage: slurm_cluster.sh drain NODE [REASON]"
    scontrol update NodeName="$2" State=DRAIN Reason="${3:-tessera test}" ;;
  resume)
    [ $# = 2 ] || fail "usage: slurm_cluster.sh resume NODE"
    scontrol update NodeName="$2" State=RESUME ;;
  start-node)
    [ $# = 2 ] || fail "usage: slurm_cluster.sh start-node NODE"
    load_cluster
    stop slurmd "$SB/run/slurmd.$2.pid"
    start_slurmd "$2" ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
