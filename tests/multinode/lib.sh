# shellcheck shell=bash
# Helpers for multi-node test scripts on the namespace cluster (cluster.sh,
# slurm_cluster.sh). Source it from a bash test script:
#
#   #!/usr/bin/env bash
#   set -euo pipefail
#   . "$(dirname "$0")/../multinode/lib.sh"      # path to this file
#   mn_require                       # root, ip, nsenter, unshare, iptables, mpirun, slurmd...
#   mn_setup 3 --slurm               # 3 nodes + Slurm; everything is torn down at exit
#   mn_exec tn1 hostname             # -> tn1
#   mn_mpirun 60 --host tn1:2,tn2:1 -np 3 ./prog        # mpirun across nodes, 60 s bound
#   mn_run 60 srun -N3 -n3 hostname                      # any command, bounded
#   mn_spawn tn2 ./server > "$MN_TMP/server.log" 2>&1 &  # $! = the server's pid
#   mn_wait_log "$MN_TMP/server.log" 'listening on' 30   # bounded waits only
#   kill -9 $!                                           # crash exactly that process
#   mn_pass "all good"
#
# What mn_setup gives the script: the variables of $TESSERA_MN_BASE/env.sh (TESSERA_MN_SUBNET,
# TESSERA_MN_NODES, TESSERA_MN_ADDRS, TESSERA_MN_AGENT, TESSERA_MN_MPIRUN_ARGS, ...),
# SLURM_CONF with --slurm, OMPI_ALLOW_RUN_AS_ROOT*, and $MN_TMP, a scratch directory that is
# deleted when the script passes and kept (path printed) when it fails.
#
# Teardown, however the script ends (exit, error under set -e, SIGINT, SIGTERM, SIGHUP):
# the script's background jobs and their process trees, the Slurm daemons, every process
# in the node namespaces, the namespaces, the bridge and the /etc/hosts lines. SIGKILL
# cannot be trapped (ctest's timeout may use it): the next mn_setup / cluster.sh up then
# removes the stale cluster first. Bash runs a trap only after the foreground command
# ends, so run long commands through mn_run / mn_mpirun (background + wait): a TERM then
# tears down at once instead of after the command.
#
# One cluster per machine: mn_setup waits (bounded, TESSERA_MN_LOCK_WAIT_S, default 600 s)
# until no other live test script owns the cluster, so parallel ctest runs serialise.
#
# Exit codes: mn_require exits 77 (ctest SKIP_RETURN_CODE) when something is missing, or 1
# with "FAILED: missing X (Debian package Y)" when $CI is "true".

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MN_SCRIPT="$(basename "${0:-test}")"
MN_OWNED=0
MN_SLURM=0
MN_TMP=""
MN_TORN_DOWN=0

mn_log() { printf '[%s %s] %s\n' "$(date +%T)" "$MN_SCRIPT" "$*" >&2; }
mn_fail() { echo "FAILED: $*" >&2; exit 1; }
mn_skip() { echo "SKIPPED: $*" >&2; exit 77; }
mn_pass() { echo "PASSED: ${*:-$MN_SCRIPT}" >&2; }
# mn_missing WHAT: skip (exit 77) or, on CI, fail (exit 1).
mn_missing() {
  if [ "${CI:-}" = "true" ]; then echo "FAILED: missing $*" >&2; exit 1; fi
  mn_skip "missing $*"
}

# mn_require [CMD=DEBIAN_PACKAGE...]: root, the namespace tools, Open MPI and Slurm, plus
# any extra commands given (e.g. mn_require mpicc=libopenmpi-dev).
mn_require() {
  [ "$(id -u)" = 0 ] || mn_missing "root (network namespaces, bridges and /etc/hosts need it)"
  local spec cmd pkg
  for spec in ip=iproute2 nsenter=util-linux unshare=util-linux iptables=iptables flock=util-linux \
              mpirun=openmpi-bin slurmd=slurmd slurmctld=slurmctld srun=slurm-client sbatch=slurm-client \
              munged=munge "$@"; do
    cmd="${spec%%=*}"
    pkg="${spec#*=}"
    command -v "$cmd" >/dev/null 2>&1 || mn_missing "$cmd (Debian package $pkg)"
  done
  unshare --uts --net true 2>/dev/null || mn_missing "permission to create namespaces (CAP_SYS_ADMIN; not in an unprivileged container)"
}

# Takes the machine-wide ownership of the cluster for this script (bounded wait).
_mn_own() {
  local wait_s="${TESSERA_MN_LOCK_WAIT_S:-600}" t0 me got said=""
  me="$$ $(mn_proc_start $$)"
  t0=$(date +%s)
  while :; do
    got="$( (
      flock -w 10 7 || exit 1
      read -r opid ostart 2>/dev/null < "$MN_OWNER_FILE"
      if [ -n "${opid:-}" ] && [ "$opid" != $$ ] && [ "$(mn_proc_start "$opid")" = "${ostart:-}" ]; then
        echo "busy $opid"
      else
        echo "$me" > "$MN_OWNER_FILE" && echo ok
      fi
    ) 7>>"$MN_OWNER_FILE.lock")"
    case "$got" in
      ok) MN_OWNED=1; return 0 ;;
      busy*) [ -z "$said" ] && said=1 && mn_log "waiting (up to ${wait_s} s) for pid ${got#busy }, which uses the namespace cluster"
             [ $(( $(date +%s) - t0 )) -ge "$wait_s" ] &&
               mn_fail "the namespace cluster is still owned by pid ${got#busy } ($(tr '\0' ' ' 2>/dev/null < "/proc/${got#busy }/cmdline")) after ${wait_s} s"
             sleep 1 ;;
      *) mn_fail "cannot lock $MN_OWNER_FILE.lock" ;;
    esac
  done
}

# mn_kill_tree PID: SIGKILL a process and all its descendants (children first found,
# so none escapes to init).
mn_kill_tree() {
  local c
  kill -STOP "$1" 2>/dev/null
  for c in $(pgrep -P "$1" 2>/dev/null); do mn_kill_tree "$c"; done
  kill -KILL "$1" 2>/dev/null
}

mn_teardown() {
  local rc=$?
  [ "$MN_TORN_DOWN" = 1 ] && return 0
  MN_TORN_DOWN=1
  trap '' INT TERM HUP
  set +e
  local p pids
  pids="$(jobs -p)"
  disown -a 2>/dev/null   # no "Killed" report per job
  for p in $pids; do mn_kill_tree "$p"; done
  if [ "$MN_OWNED" = 1 ]; then
    [ "$MN_SLURM" = 1 ] && timeout 60 bash "$MN_DIR/slurm_cluster.sh" down >/dev/null 2>&1
    timeout 60 bash "$MN_DIR/cluster.sh" down >/dev/null 2>&1 || mn_log "cluster.sh down failed"
    rm -f "$MN_OWNER_FILE"
    MN_OWNED=0
  fi
  if [ -n "$MN_TMP" ] && [ -d "$MN_TMP" ]; then
    if [ "$rc" = 0 ] && [ "${TESSERA_MN_KEEP_TMP:-0}" != 1 ]; then rm -rf "$MN_TMP"; else mn_log "logs kept in $MN_TMP (rc $rc)"; fi
  fi
  return 0
}

# mn_setup N [--slurm]: own the cluster, build N nodes (and Slurm), export their
# variables, install the teardown traps.
mn_setup() {
  local n="$1" slurm="${2:-}"
  trap mn_teardown EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  _mn_own
  MN_TMP="$(mktemp -d /tmp/tessera-mn-test.XXXXXX)"
  bash "$MN_DIR/cluster.sh" up "$n" || mn_fail "cluster.sh up $n"
  # shellcheck disable=SC1091
  . "$MN_BASE/env.sh"
  if [ "$slurm" = --slurm ]; then
    MN_SLURM=1
    bash "$MN_DIR/slurm_cluster.sh" up || mn_fail "slurm_cluster.sh up"
    # shellcheck disable=SC1091
    . "$MN_BASE/slurm/env.sh"
  fi
}

# mn_exec [--private DIR]... NODE CMD...: run CMD on NODE (see cluster.sh exec) and
# return its status. Bound it with `mn_exec NODE timeout T CMD...`. NOTE: after `mn_exec NODE CMD &`, $! is a bash subshell
# around CMD, not CMD: signalling it (kill -9 $!) would leave CMD running. For a process
# to signal later use mn_spawn.
mn_exec() { ( mn_node_exec "$@" ); }

# mn_spawn [--private DIR]... NODE CMD... &   (only with &): CMD on NODE in the background
# with $! = CMD's own pid (the async subshell execs into it), so `kill -9 $!` is a crash
# of exactly that process and `wait $!` returns its status.
mn_spawn() {
  [ "$BASHPID" != "$$" ] || mn_fail "mn_spawn must be started in the background: mn_spawn NODE CMD... &"
  mn_node_exec "$@"
  exit 126
}

# mn_run SECONDS CMD...: CMD (a program, not a shell function) with a time bound (TERM
# to its process group, KILL 5 s later), run in the background and waited for, so that
# signals to the script are handled at once. Its stdin is /dev/null (bash's rule for
# background commands).
mn_run() {
  local t="$1"
  shift
  timeout -k 5 "$t" "$@" &
  local pid=$!
  wait "$pid"
}

# mn_mpirun SECONDS MPIRUN-ARGS...: mpirun across the nodes (rsh agent, interfaces of the
# cluster's subnet), bounded.
mn_mpirun() {
  local t="$1"
  shift
  # shellcheck disable=SC2086  # TESSERA_MN_MPIRUN_ARGS is a list of words
  mn_run "$t" mpirun $TESSERA_MN_MPIRUN_ARGS "$@"
}

# mn_wait_cmd SECONDS CMD...: poll CMD (every 0.2 s) until it succeeds; 1 on timeout.
mn_wait_cmd() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# mn_wait_file FILE SECONDS: until FILE exists and is not empty.
mn_wait_file() {
  mn_wait_cmd "$2" test -s "$1" || { mn_log "timeout after $2 s waiting for $1"; return 1; }
}

# mn_wait_log FILE REGEX SECONDS: until a line of FILE matches REGEX (grep -E).
mn_wait_log() {
  mn_wait_cmd "$3" grep -Eq -- "$2" "$1" || {
    mn_log "timeout after $3 s waiting for /$2/ in $1; its last lines:"
    tail -n 5 "$1" 2>/dev/null | sed 's/^/    /' >&2
    return 1
  }
}
