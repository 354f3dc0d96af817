#!/usr/bin/env bash
# A cluster of N "nodes" on this one machine, made of Linux network namespaces, for
# multi-host tests of real mpirun / Slurm / Tessera jobs. Needs root, iproute2, util-linux
# (nsenter, unshare) and iptables (partition/heal only).
#
# What `up N` builds (design notes: /work/shared/design/PLATFORM.md section 8):
#   bridge tmnbr0 on the host side with address S.254/24 (name tctl in /etc/hosts);
#   namespaces tmn-tn1..tmn-tnN, each with a veth end renamed eth0, address S.K/24, lo up
#   and NO default route: a node reaches the other nodes and the bridge address, nothing
#   else, so a job that works here is not secretly using loopback or the outside world;
#   names tn1..tnN and tctl in /etc/hosts between marker lines (only those are removed);
#   $TESSERA_MN_BASE/env.sh (default base /tmp/tessera-multinode) exporting
#   TESSERA_MN_SUBNET (CIDR), TESSERA_MN_NODES ("tn1 tn2 ..."), TESSERA_MN_ADDRS,
#   TESSERA_MN_CTL_ADDR, TESSERA_MN_AGENT (Open MPI rsh agent) and TESSERA_MN_MPIRUN_ARGS.
# S is the first of 10.77.0, 10.78.0, ... 10.99.0 that overlaps no address or route of the
# machine (or TESSERA_MN_SUBNET=10.X.Y or 10.X.Y.0/24 to force one; it must be free too).
#
# Usage:
#   cluster.sh up N                    remove any stale cluster (crashed run), build N nodes
#   cluster.sh down                    stop the Slurm of slurm_cluster.sh if up, SIGKILL every
#                                      process in the node namespaces, delete namespaces,
#                                      bridge and /etc/hosts lines; fine when nothing is up
#   cluster.sh status                  what is up (exit 1 when no cluster)
#   cluster.sh exec [--private DIR]... NODE CMD [ARGS...]
#                                      run CMD on NODE (name or address): its network
#                                      namespace + a UTS namespace with hostname NODE; env,
#                                      cwd and mounts are the caller's. --private DIR: DIR is
#                                      NODE's own directory (a private mount namespace binds
#                                      $TESSERA_MN_BASE/private/NODE/<DIR> on it): a node-local
#                                      disk, e.g. a local checkpoint dir; same files for every
#                                      command on NODE, invisible to other nodes; deleted by
#                                      down. TESSERA_MN_PRIVATE=DIR1:DIR2 does the same for
#                                      exec, the rsh agent (mpirun's orted) and slurmd.
#   cluster.sh partition A B           drop all traffic between A and B (iptables in both
#                                      namespaces; A or B may be tctl: rules on the node side)
#   cluster.sh heal A B                undo partition A B
#   cluster.sh kill NODE               SIGKILL every process in NODE's network namespace
#                                      (a node crash; its slurmd dies too)
#
# Traps (why the script is the way it is):
# - `ip netns exec` hides /sys/fs/cgroup (remounts /sys): nodes are entered with nsenter.
# - Every namespace shares the machine's hostname unless each command gets a UTS namespace;
#   Open MPI and Slurm identify nodes by hostname.
# - Deleting a namespace with processes still in it leaves it alive (and its eth0 with its
#   address); `down` therefore kills those processes first, and `up` always runs `down`.
# - /etc/hosts may be a bind mount: it is rewritten in place (cat >), never renamed over.
# - One cluster per machine (names are machine-wide). Concurrent up/down are serialised by
#   a flock; tests (lib.sh mn_setup) also own the cluster for their whole run
#   (/run/lock/tessera-multinode.owner): up/down from anywhere else refuse while that test
#   lives (TESSERA_MN_FORCE=1 overrides).
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: FAILED: $*" >&2; exit 1; }

# shellcheck disable=SC2086  # split on dots on purpose
ip2int() { local IFS=.; set -- $1; echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 )); }
# cidr_overlap A/p B/q: the two networks share an address.
cidr_overlap() {
  local a="${1%/*}" p="${1#*/}" b="${2%/*}" q="${2#*/}" m
  [ "$p" = "$1" ] && p=32
  [ "$q" = "$2" ] && q=32
  m=$(( p < q ? p : q ))
  local mask=$(( m == 0 ? 0 : (0xffffffff << (32 - m)) & 0xffffffff ))
  [ $(( $(ip2int "$a") & mask )) -eq $(( $(ip2int "$b") & mask )) ]
}

# Addresses and routes of the machine (cluster already removed), as CIDRs.
used_networks() {
  ip -4 -o addr show | awk '{print $4}'
  ip -4 route show table all 2>/dev/null | awk '$1 != "default" && $1 != "broadcast" && $1 != "local" {print $1} $1 == "local" || $1 == "broadcast" {print $2}'
}

pick_subnet() {
  local used cand net
  used="$(used_networks)"
  local forced="${TESSERA_MN_SUBNET:-}"
  forced="${forced%.0/24}"
  if [[ "$forced" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    set -- "$forced"
  else
    set -- $(seq -f '10.%g.0' 77 99)
  fi
  for cand in "$@"; do
    local clash=0
    for net in $used; do
      cidr_overlap "$cand.0/24" "$net" && { clash=1; break; }
    done
    [ $clash = 0 ] && { echo "$cand"; return 0; }
  done
  return 1
}

hosts_remove_block() {
  grep -qF "$MN_HOSTS_BEGIN" /etc/hosts 2>/dev/null || return 0
  local tmp
  tmp="$(mktemp)"
  awk -v b="$MN_HOSTS_BEGIN" -v e="$MN_HOSTS_END" '$0 == b {skip = 1; next} skip && $0 == e {skip = 0; next} !skip' /etc/hosts > "$tmp" &&
    cat "$tmp" > /etc/hosts
  rm -f "$tmp"
}

# SIGKILL every process in a network namespace until none is left (bounded: 10 s).
kill_ns() {
  local ns="$1" pids i
  for i in $(seq 100); do
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
    [ -z "${pids// /}" ] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    [ "$i" = 1 ] || sleep 0.1
  done
  log "processes still in $ns after 10 s: $pids"
  return 1
}

# Everything of a cluster, whether complete, half-built or left by a crashed run.
teardown() {
  local quiet="${1:-}" found=0 b ns link
  # 1. A Slurm on the nodes, first (it would otherwise lose its slurmds under it and
  #    leave slurmctld and munged behind). Both the current and the recorded base.
  for b in "$MN_BASE" "$(cat "$MN_REGISTRY" 2>/dev/null)"; do
    if [ -z "$b" ] || [ ! -d "$b/slurm" ]; then continue; fi
    found=1
    TESSERA_MN_BASE="$b" bash "$MN_DIR/slurm_cluster.sh" down >/dev/null 2>&1 || log "slurm_cluster.sh down under $b failed"
  done
  # 2. Processes in the node namespaces, then the namespaces.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${MN_NS_PREFIX}"); do
    found=1
    kill_ns "$ns"
    ip netns del "$ns" 2>/dev/null || log "cannot delete namespace $ns"
  done
  # 3. Host-side interfaces (deleting a veth end deletes its peer).
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^(${MN_NS_PREFIX}|${MN_BRIDGE}\$)"); do
    found=1
    ip link del "$link" 2>/dev/null
  done
  # 4. /etc/hosts block and state.
  grep -qF "$MN_HOSTS_BEGIN" /etc/hosts 2>/dev/null && found=1
  hosts_remove_block
  rm -rf "$MN_BASE/private"
  rm -f "$MN_BASE/env.sh" "$MN_BASE/.slurm.lock" "$MN_REGISTRY"
  rmdir "$MN_BASE" 2>/dev/null
  [ -n "$quiet" ] && [ $found = 1 ] && log "removed a stale cluster (namespaces/bridge/hosts lines/slurm of an earlier run)"
  return 0
}

lock() {
  local owner
  if owner="$(mn_foreign_owner)" && [ "${TESSERA_MN_FORCE:-0}" != 1 ]; then
    die "the cluster is in use by test pid $owner ($(tr '\0' ' ' 2>/dev/null < "/proc/$owner/cmdline")); wait for it, or set TESSERA_MN_FORCE=1"
  fi
  exec 8>/run/lock/tessera-multinode.lock
  flock -w 60 8 || die "another cluster.sh up/down holds /run/lock/tessera-multinode.lock for 60 s"
}

cmd_up() {
  local n="${1:-}"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 99 ]; then die "usage: cluster.sh up N (1..99)"; fi
  [ "$(id -u)" = 0 ] || die "needs root"
  local t0 s k ns nodes="" addrs=""
  t0=$(date +%s%N)
  lock
  teardown stale
  s="$(pick_subnet)" || die "no free /24 among ${TESSERA_MN_SUBNET:-10.77.0.0 .. 10.99.0.0} (overlaps an address or route: ip -4 -o addr; ip route)"

  ip link add "$MN_BRIDGE" type bridge || die "cannot create bridge $MN_BRIDGE"
  # A bridge takes the lowest MAC of its ports unless one is set: a port added or removed
  # later (a test rewiring a node) would change it, and the nodes' ARP entries for the
  # bridge address go stale until they time out (mpirun's daemons then hang on connect).
  ip link set "$MN_BRIDGE" address "$(cat "/sys/class/net/$MN_BRIDGE/address")" || { teardown; die "bridge MAC"; }
  { ip addr add "$s.254/24" dev "$MN_BRIDGE" && ip link set "$MN_BRIDGE" up; } || { teardown; die "bridge address"; }
  for k in $(seq "$n"); do
    ns="$(mn_ns "tn$k")"
    { ip netns add "$ns" &&
      ip link add "tmn-tn$k" type veth peer name "tmn-tn${k}p" &&
      ip link set "tmn-tn${k}p" netns "$ns" &&
      ip -n "$ns" link set "tmn-tn${k}p" name eth0 &&
      ip -n "$ns" addr add "$s.$k/24" dev eth0 &&
      ip -n "$ns" link set eth0 up &&
      ip -n "$ns" link set lo up &&
      ip link set "tmn-tn$k" master "$MN_BRIDGE" &&
      ip link set "tmn-tn$k" up; } || { teardown; die "cannot build node tn$k"; }
    nodes+="${nodes:+ }tn$k"
    addrs+="${addrs:+ }$s.$k"
  done

  local tmp
  tmp="$(mktemp)"
  { cat /etc/hosts
    echo "$MN_HOSTS_BEGIN"
    echo "$s.254 $MN_CTL_NAME"
    for k in $(seq "$n"); do echo "$s.$k tn$k"; done
    echo "$MN_HOSTS_END"; } > "$tmp" && cat "$tmp" > /etc/hosts
  rm -f "$tmp"

  mkdir -p "$MN_BASE"
  cat > "$MN_BASE/env.sh" <<EOF
# Written by tests/multinode/cluster.sh up $n; source it.
export TESSERA_MN_BASE=$MN_BASE
export TESSERA_MN_SUBNET=$s.0/24
export TESSERA_MN_NODES="$nodes"
export TESSERA_MN_ADDRS="$addrs"
export TESSERA_MN_CTL=$MN_CTL_NAME
export TESSERA_MN_CTL_ADDR=$s.254
export TESSERA_MN_AGENT=$MN_DIR/rsh_agent.sh
# mpirun options that place ranks on the nodes (add --host tn1:2,tn2:1 -np 3 ...):
export TESSERA_MN_MPIRUN_ARGS="--bind-to none --mca plm_rsh_agent $MN_DIR/rsh_agent.sh --mca oob_tcp_if_include $s.0/24 --mca btl self,tcp --mca btl_tcp_if_include $s.0/24"
EOF
  echo "$MN_BASE" > "$MN_REGISTRY"

  # Reachability, cheaply (no ping in the namespaces): a TCP connect to a closed port is
  # answered by a reset at once when the path works, and hangs when it does not.
  check_path() {  # node addr
    local out
    out="$(nsenter --net="/run/netns/$(mn_ns "$1")" timeout 3 bash -c "exec 3<>/dev/tcp/$2/1" 2>&1)"
    case "$out" in *refused*) return 0 ;; esac
    teardown
    die "tn$1 cannot reach $2 (${out:-timeout})"
  }
  check_path tn1 "$s.254"
  [ "$n" -ge 2 ] && check_path "tn$n" "$s.1"
  log "up: $n nodes ($nodes) on $s.0/24, bridge $MN_BRIDGE $s.254 ($MN_CTL_NAME), in $(( ($(date +%s%N) - t0) / 1000000 )) ms; source $MN_BASE/env.sh"
}

# node_addr NAME -> address (tctl -> bridge address)
node_addr() {
  # shellcheck disable=SC1091
  . "$MN_BASE/env.sh" 2>/dev/null || die "no cluster state in $MN_BASE/env.sh"
  if [ "$1" = "$MN_CTL_NAME" ]; then echo "$TESSERA_MN_CTL_ADDR"; return; fi
  local n
  n="$(mn_node_name "$1")" || exit 1
  echo "${TESSERA_MN_SUBNET%.0/24}.${n#tn}"
}

# filter OP A B: add (-I) or delete (-D) the DROP rules between A and B.
filter() {
  local op="$1" a="$2" b="$3" aa ba rc=0
  aa="$(node_addr "$a")" && ba="$(node_addr "$b")" || exit 1
  [ "$a" = "$b" ] && die "partition of a node from itself"
  for side in "$a:$ba" "$b:$aa"; do
    local node="${side%%:*}" peer="${side#*:}"
    [ "$node" = "$MN_CTL_NAME" ] && continue   # never filter the machine's own namespace
    node="$(mn_node_name "$node")" || exit 1
    local nsf
    nsf="/run/netns/$(mn_ns "$node")"
    if [ "$op" = -I ]; then
      nsenter --net="$nsf" iptables -w 5 -I INPUT -s "$peer" -j DROP &&
        nsenter --net="$nsf" iptables -w 5 -I OUTPUT -d "$peer" -j DROP || rc=1
    else  # delete every copy (partition may have been called twice)
      while nsenter --net="$nsf" iptables -w 5 -D INPUT -s "$peer" -j DROP 2>/dev/null; do :; done
      while nsenter --net="$nsf" iptables -w 5 -D OUTPUT -d "$peer" -j DROP 2>/dev/null; do :; done
    fi
  done
  return $rc
}

cmd_status() {
  if [ ! -r "$MN_BASE/env.sh" ]; then
    echo "cluster: not up (no $MN_BASE/env.sh)"
    ip netns list 2>/dev/null | grep -q "^${MN_NS_PREFIX}" && echo "cluster: but stale namespaces exist: $(ip netns list | grep "^${MN_NS_PREFIX}" | awk '{print $1}' | tr '\n' ' ')"
    return 1
  fi
  # shellcheck disable=SC1091
  . "$MN_BASE/env.sh"
  echo "subnet $TESSERA_MN_SUBNET  bridge $MN_BRIDGE $TESSERA_MN_CTL_ADDR ($TESSERA_MN_CTL)  state $MN_BASE"
  local n ns rules
  for n in $TESSERA_MN_NODES; do
    ns="$(mn_ns "$n")"
    if [ ! -e "/run/netns/$ns" ]; then echo "  $n: MISSING namespace $ns"; continue; fi
    rules="$(nsenter --net="/run/netns/$ns" iptables -w 5 -S 2>/dev/null | grep -c -- '-j DROP')"
    printf '  %-5s %-15s processes %-3s drop-rules %s\n' "$n" "$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}')" \
      "$(ip netns pids "$ns" | wc -l)" "$rules"
  done
  if [ -r "$MN_BASE/slurm/env.sh" ]; then
    echo "slurm: $MN_BASE/slurm (SLURM_CONF=$MN_BASE/slurm/etc/slurm.conf)"
    SLURM_CONF="$MN_BASE/slurm/etc/slurm.conf" timeout 10 sinfo -h -o '  %P %D %T %N' 2>&1
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down)
    [ "$(id -u)" = 0 ] || die "needs root"
    lock
    teardown
    log "down" ;;
  status) cmd_status ;;
  exec) shift; mn_node_exec "$@"; exit $? ;;
  partition) [ $# = 3 ] || die "usage: cluster.sh partition A B"; filter -I "$2" "$3" ;;
  heal) [ $# = 3 ] || die "usage: cluster.sh heal A B"; filter -D "$2" "$3" ;;
  kill)
    [ $# = 2 ] || die "usage: cluster.sh kill NODE"
    node="$(mn_node_name "$2")" || exit 1
    n_killed="$(ip netns pids "$(mn_ns "$node")" | wc -l)"
    kill_ns "$(mn_ns "$node")" && log "killed $n_killed processes on $node" ;;
  *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
