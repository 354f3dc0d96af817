# shellcheck shell=bash disable=SC2034,SC2016  # variables used by the sourcing scripts; sh -c bodies
# Shared definitions of the namespace test cluster, sourced by cluster.sh, rsh_agent.sh,
# slurm_cluster.sh and lib.sh (not run on its own). It names the machine-wide objects a
# cluster is made of and holds the one function that runs a command "on" a node, so the
# rsh agent, `cluster.sh exec`, the slurmd start and the test helpers all enter a node
# the same way.
#
# A node tnK is: the network namespace /run/netns/tmn-tnK (its own eth0 on the bridge
# tmnbr0, address .K of the cluster's /24, lo, no default route) plus, for every command
# run on it, a fresh UTS namespace whose hostname is tnK.
#
# Why nsenter and not `ip netns exec`: `ip netns exec` remounts /sys for the namespace,
# which hides /sys/fs/cgroup (slurmd then fails "Unable to initialize cgroup plugin").
# Why a UTS namespace: Open MPI and Slurm tell nodes apart by hostname; without one
# every node would be called like the machine.
#
# The names are machine-wide (namespaces, interfaces, /etc/hosts), so one machine holds
# one cluster at a time; TESSERA_MN_BASE only moves the state files.

MN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MN_BASE="${TESSERA_MN_BASE:-/tmp/tessera-multinode}"
MN_NS_PREFIX="tmn-"          # network namespace of node tnK: tmn-tnK
MN_BRIDGE="tmnbr0"           # host-side bridge; veth host ends are tmn-tnK (<= 15 chars)
MN_CTL_NAME="tctl"           # /etc/hosts name of the bridge address (slurmctld, mpirun)
MN_HOSTS_BEGIN="# BEGIN tessera-multinode (tests/multinode/cluster.sh; removed by cluster.sh down)"
MN_HOSTS_END="# END tessera-multinode"
# Machine-wide record of the state directory of the cluster that is up, so that a later
# `up` with another TESSERA_MN_BASE still finds (and stops) a stale Slurm of a crashed run.
MN_REGISTRY="/run/lock/tessera-multinode.base"

# A test script that uses the cluster (lib.sh mn_setup) records "PID STARTTIME" here.
MN_OWNER_FILE="/run/lock/tessera-multinode.owner"

mn_ns() { echo "${MN_NS_PREFIX}$1"; }

mn_proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# Prints the pid of a live test script that owns the cluster when it is not this process
# or one of its ancestors (so that cluster.sh up/down do not pull the cluster from under a
# running test); prints nothing and fails otherwise.
mn_foreign_owner() {
  local opid ostart p
  read -r opid ostart 2>/dev/null < "$MN_OWNER_FILE" || return 1
  [ -n "${opid:-}" ] && [ "$(mn_proc_start "$opid")" = "${ostart:-}" ] || return 1
  p=$$
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    [ "$p" = "$opid" ] && return 1
    p="$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)"
  done
  echo "$opid"
}

# Resolves a node given by name (tn2) or by address (10.77.0.2) to its name; fails when
# no such node namespace exists.
mn_node_name() {
  local n="$1" i=1 a
  if [[ "$n" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ -r "$MN_BASE/env.sh" ]; then
    # shellcheck disable=SC1091
    . "$MN_BASE/env.sh"
    for a in ${TESSERA_MN_ADDRS:-}; do
      [ "$a" = "$n" ] && { n="tn$i"; break; }
      i=$((i + 1))
    done
  fi
  n="${n%%.*}"   # tn1.some.domain -> tn1 (Open MPI may pass fully qualified names)
  [ -e "/run/netns/$(mn_ns "$n")" ] || { echo "multinode: no node '$1' (no /run/netns/$(mn_ns "$n"); is the cluster up?)" >&2; return 1; }
  echo "$n"
}

# mn_node_exec [--private DIR]... NODE CMD [ARGS...]
# Replaces the calling shell by CMD running on NODE: in NODE's network namespace and a new
# UTS namespace with hostname NODE. Environment, cwd, user and mount namespace are the
# caller's, so cgroups, /tmp and the munge socket stay visible.
# --private DIR (repeatable; also every directory in $TESSERA_MN_PRIVATE, colon-separated):
# CMD gets a private mount namespace in which DIR is NODE's own directory, like a local
# disk: every command run on NODE with the same --private DIR sees the same files (kept
# across process restarts, until `cluster.sh down`), other nodes and the host do not (the
# host finds them under $TESSERA_MN_BASE/private/NODE/). Empty at first. DIR is created on
# the host when missing.
mn_node_exec() {
  local -a priv=()
  local d
  while [ "${1:-}" = "--private" ]; do
    priv+=("$2")
    shift 2
  done
  if [ -n "${TESSERA_MN_PRIVATE:-}" ]; then
    local IFS=:
    for d in $TESSERA_MN_PRIVATE; do [ -n "$d" ] && priv+=("$d"); done
    unset IFS
  fi
  [ $# -ge 2 ] || { echo "usage: mn_node_exec [--private DIR]... NODE CMD [ARGS...]" >&2; return 2; }
  local node
  node="$(mn_node_name "$1")" || return 1
  shift
  local nsf
  nsf="/run/netns/$(mn_ns "$node")"
  if [ ${#priv[@]} -gt 0 ]; then
    local -a binds=()
    local src
    for d in "${priv[@]}"; do
      d="$(realpath -m "$d")"
      src="$MN_BASE/private/$node/$(echo "${d#/}" | tr / _)"
      mkdir -p "$d" "$src" || return 1
      binds+=("$src" "$d")
    done
    # unshare --mount first makes every mount private (util-linux default --propagation
    # private), so the bind mounts never appear on the host or on other nodes.
    exec nsenter --net="$nsf" unshare --uts --mount -- sh -c '
      hostname "$1" || exit 126; shift
      while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 126; shift 2; done
      shift; exec "$@"' sh "$node" "${binds[@]}" -- "$@"
  fi
  exec nsenter --net="$nsf" unshare --uts -- sh -c 'hostname "$1" && shift && exec "$@"' sh "$node" "$@"
}
