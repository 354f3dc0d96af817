#!/usr/bin/env bash
# What a new user gets wrong across 2 hosts (tn1, tn2; tests/multinode/cluster.sh), and
# what Tessera then does. tn2 is made a host with two interfaces: eth0 (192.168.77.2, up,
# first in the kernel's order, but no other node reaches it: a public or management
# network) and eth1 (the cluster network, on the bridge).
#   1. A server on tn2, nothing named: it listens on the interface of its route to the
#      coordinator (eth1), not on the first interface up, and the job trains: under
#      mpirun (rank 0's endpoint through MPI) and with the coordinator named (no MPI).
#   2. Rank 0 on tn2 under mpirun, nothing named: it listens on both interfaces and
#      publishes both addresses; the ranks on tn1 take the one they reach (eth1's) and the
#      job trains. Without a job key rank 0 listens on eth0 alone, and the others say they
#      have no route to it. With --interface=<cluster network> on every rank it trains. A
#      rank told only eth0's address (MASTER_ADDR) ends saying it has no route to it and
#      naming --interface=NETWORK/LEN.
#   3. torchrun-style variables across hosts without MASTER_ADDR: every rank stops at once
#      (exit 2) saying the coordinator host is loopback, not after the registration timeout.
#   4. One rank with its own host's key file, MASTER_ADDR naming the wrong host, a wrong
#      port on one rank, the port dropped by a firewall (iptables): rank 0 warns that the
#      named host is not its own; the rank's error says "the job key differs" / "nothing
#      listens on" / "did not answer ... a firewall".
# Usage: user_errors_test.sh BUILD_DIR   (ctest label multinode)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)"
T="$BUILD/launch/tessera"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
. "$HERE/job_lib.sh"
mn_require
mn_setup 2

NET="${TESSERA_MN_SUBNET%.0/24}"
# Node $1 (tnK) gets a first interface eth0 (192.168.77.K/24: a veth pair inside its
# namespace, so it is up, yet no other node can reach it); its bridge link becomes eth1,
# created later, so the kernel lists it second. cluster.sh down removes both (namespace,
# tmn-* links).
two_interfaces() {
  local node="$1" k="${1#tn}" ns="tmn-$1"
  ip -n "$ns" link del eth0 &&
    ip -n "$ns" link add eth0 type veth peer name "wan$k" && ip -n "$ns" link set "wan$k" up &&
    ip -n "$ns" addr add "192.168.77.$k/24" dev eth0 && ip -n "$ns" link set eth0 up &&
    ip link add "tmn-${node}x" type veth peer name "tmn-${node}xp" && ip link set "tmn-${node}xp" netns "$ns" &&
    ip -n "$ns" link set "tmn-${node}xp" name eth1 && ip -n "$ns" addr add "$NET.$k/24" dev eth1 &&
    ip -n "$ns" link set eth1 up && ip link set "tmn-${node}x" master tmnbr0 && ip link set "tmn-${node}x" up
}
two_interfaces tn2 || mn_fail "cannot give tn2 two interfaces"
[ "$(ip -n tmn-tn2 -4 -o addr show | awk '$2 != "lo" {print $2; exit}')" = eth0 ] || mn_fail "eth0 is not tn2's first interface"

JOB=(--data="$SRC/data/mnist" --train_limit=2000 --test_limit=200 --hidden=32 --batch_size=32 --epochs=1 --log_every=0
     --register_timeout_s=10 --request_timeout_s=20)
KEY="--auth_key_file=$MN_TMP/job.key"

mn_log "1a: mpirun, server 0 on tn2 (rank 0 and the worker on tn1)"
# shellcheck disable=SC2046  # tj_forward_env prints a list of options
mn_mpirun 120 --oversubscribe --map-by node -np 3 --host tn1:2,tn2:1 $(tj_forward_env) "$T" train --servers 1 "$KEY" "${JOB[@]}" \
  > "$MN_TMP/1a.log" 2>&1 || { tail -20 "$MN_TMP/1a.log"; mn_fail "1a: the job failed"; }
tj_expect "$MN_TMP/1a.log" "\[server 0\] .*network: listening on $NET\.2, advertised as $NET\.2 \(interface eth1 \(default choice: this host's route to the coordinator $NET\.1" "1a: server 0 follows its route to rank 0"
tj_expect_min "$MN_TMP/1a.log" test_accuracy 0.3 "1a"

mn_log "1b: the coordinator named (TESSERA_COORDINATOR_HOST, no MPI), server 0 on tn2"
# shellcheck disable=SC2034  # read by tj_bare
TJ_PORT=29621
PIDS=()
for r in 0 1 2; do
  node=tn1
  [ "$r" = 1 ] && node=tn2
  tj_bare "$node" "$r" 3 "$MN_TMP/1b.r$r" timeout 120 "$T" train --servers 1 "$KEY" "${JOB[@]}"
  PIDS+=($!)
done
rc=0
for p in "${PIDS[@]}"; do wait "$p" || rc=$?; done
[ "$rc" = 0 ] || { tail -n 5 "$MN_TMP"/1b.r*; mn_fail "1b: exit code $rc"; }
tj_expect "$MN_TMP/1b.r1" "network: the job spans hosts .*advertised as $NET\.2 \(interface eth1 \(default choice: this host's route to the coordinator tn1" "1b: server 0 follows its route to rank 0"

mn_log "2: rank 0 on tn2, whose first interface eth0 tn1 cannot reach"
# shellcheck disable=SC2046
mn_mpirun 120 --oversubscribe --map-by node -np 3 --host tn2:2,tn1:1 $(tj_forward_env) "$T" train --servers 1 "$KEY" "${JOB[@]}" \
  > "$MN_TMP/2.log" 2>&1 || { tail -20 "$MN_TMP/2.log"; mn_fail "2: rank 0 published eth0 and eth1, yet the job failed"; }
tj_expect "$MN_TMP/2.log" "\[server 0\] .*coordinator at tcp://$NET\.2:[0-9]+ .*of its addresses tcp://192\.168\.77\.2:[0-9]+,tcp://$NET\.2:[0-9]+: 192\.168\.77\.2:[0-9]+: Network is unreachable; $NET\.2:[0-9]+ reached" "2: the server on tn1 takes the address it reaches"
tj_expect_min "$MN_TMP/2.log" test_accuracy 0.3 "2"
mn_log "2d: the same without a job key: rank 0 listens on its default choice alone"
rc=0
# shellcheck disable=SC2046
mn_mpirun 120 --oversubscribe --map-by node -np 3 --host tn2:2,tn1:1 $(tj_forward_env) "$T" train --servers 1 --auth=none "${JOB[@]}" \
  > "$MN_TMP/2d.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || mn_fail "2d: without a key rank 0 still listened on every interface"
tj_expect "$MN_TMP/2d.log" "no job key \(--auth=none\), so rank 0 listens only on 192\.168\.77\.2, not on every candidate interface" "2d: rank 0 says why"
tj_expect "$MN_TMP/2d.log" "\[server 0\] .*this host has no route to 192\.168\.77\.2:[0-9]+" "2d: the server on tn1 says why"
mn_log "2c: a rank told an address of rank 0's that its host has no route to"
rc=0
RANK=2 WORLD_SIZE=3 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_ADDR=192.168.77.2 MASTER_PORT=29626 \
  mn_exec tn1 timeout 60 "$T" train --servers 1 "$KEY" "${JOB[@]}" --register_timeout_s=3 > "$MN_TMP/2c.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || mn_fail "2c: a worker that cannot reach the coordinator succeeded"
tj_expect "$MN_TMP/2c.log" "this host has no route to 192\.168\.77\.2:29626 .*name the one every host reaches, on every rank: --interface=NETWORK/LEN" "2c: the rank says why"
# shellcheck disable=SC2046
mn_mpirun 120 --oversubscribe --map-by node -np 3 --host tn2:2,tn1:1 $(tj_forward_env) "$T" train --servers 1 "$KEY" "${JOB[@]}" \
  --interface="$TESSERA_MN_SUBNET" > "$MN_TMP/2b.log" 2>&1 || { tail -20 "$MN_TMP/2b.log"; mn_fail "2: --interface=$TESSERA_MN_SUBNET did not help"; }
tj_expect_min "$MN_TMP/2b.log" test_accuracy 0.3 "2: with --interface"

mn_log "3: RANK/WORLD_SIZE/LOCAL_WORLD_SIZE across hosts without MASTER_ADDR"
t0=$(date +%s)
PIDS=()
for r in 0 1 2; do
  node=tn1
  [ "$r" = 2 ] && node=tn2
  RANK="$r" WORLD_SIZE=3 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_PORT=29622 \
    mn_exec "$node" timeout 60 "$T" train --servers 1 "$KEY" "${JOB[@]}" --register_timeout_s=30 > "$MN_TMP/3.r$r" 2>&1 &
  PIDS+=($!)
done
for r in 0 1 2; do
  rc=0
  wait "${PIDS[$r]}" || rc=$?
  [ "$rc" = 2 ] || { tail -3 "$MN_TMP/3.r$r"; mn_fail "3: rank $r exit code $rc, expected 2 (configuration error)"; }
  tj_expect "$MN_TMP/3.r$r" "this job spans hosts \(LOCAL_WORLD_SIZE < WORLD_SIZE\), but the coordinator host is 127\.0\.0\.1 .*MASTER_ADDR" "3: rank $r says why"
done
took=$(( $(date +%s) - t0 ))
[ "$took" -lt 20 ] || mn_fail "3: the ranks took $took s to stop (registration timeout 30 s): not at once"

mn_log "4: another key file, a wrong host, a wrong port on one rank; a port a firewall drops"
# run4 NAME PORT KEY [MASTER_ADDR]: rank 0 and the server on tn1 (port 29623), the worker
# on tn2 with PORT and KEY; every rank with MASTER_ADDR (default tn1).
run4() {
  PIDS=()
  for r in 0 1 2; do
    # The worker gives up first, so rank 0 is still there when it looks.
    node=tn1 port=29623 key="$KEY" wait_s=8 addr="${4:-tn1}"
    [ "$r" = 2 ] && node=tn2 port="$2" key="$3" wait_s=4
    RANK="$r" WORLD_SIZE=3 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_ADDR="$addr" MASTER_PORT="$port" \
      mn_exec "$node" timeout 60 "$T" train --servers 1 "$key" "${JOB[@]}" --register_timeout_s="$wait_s" > "$MN_TMP/$1.r$r" 2>&1 &
    PIDS+=($!)
  done
  for p in "${PIDS[@]}"; do wait "$p" || true; done
}
# tn2's own key file (a home directory that is not shared, where an earlier job's rank 0
# made one): the port answers, the coordinator does not.
TESSERA_RANK=0 TESSERA_WORLD_SIZE=3 TESSERA_COORDINATOR_PORT=29625 mn_exec tn2 timeout 30 "$T" train --servers 1 \
  --auth_key_file="$MN_TMP/tn2.key" "${JOB[@]}" --register_timeout_s=1 > "$MN_TMP/tn2key.log" 2>&1 || true
[ -s "$MN_TMP/tn2.key" ] || { tail -n 5 "$MN_TMP/tn2key.log"; mn_fail "4: no key file made on tn2"; }
run4 4key 29623 --auth_key_file="$MN_TMP/tn2.key"
tj_expect "$MN_TMP/4key.r2" "tn1:29623 \($NET\.1\) accepts TCP connections, so the address and port are right: .*this host's job key differs from rank 0's" "4: another key file named"
run4 4addr 29623 "$KEY" tn2
# Every rank names tn2, rank 0 runs on tn1.
tj_expect "$MN_TMP/4addr.r0" "the coordinator's host in tcp://tn2:29623 is none of this host's addresses .*yet this is rank 0" "4: rank 0 warns"
tj_expect "$MN_TMP/4addr.r2" "no welcome from the coordinator at tcp://tn2:29623 .*; nothing listens on tn2:29623 \($NET\.2\)" "4: the wrong host named"
run4 4port 29624 "$KEY"
tj_expect "$MN_TMP/4port.r2" "no welcome from the coordinator at tcp://tn1:29624 .*; nothing listens on tn1:29624 \($NET\.1\) \(Connection refused\): rank 0 is not \(or no longer: see its log\) running there, or this is not its port" "4: the wrong port named"
mn_exec tn1 iptables -w 5 -I INPUT -p tcp --dport 29623 -j DROP || mn_fail "iptables in tn1"
run4 4drop 29623 "$KEY"
tj_expect "$MN_TMP/4drop.r2" "tn1:29623 \($NET\.1\) did not answer a TCP connection within 2 s: a firewall drops the traffic" "4: the dropped port named"
mn_pass "two interfaces, an unreachable coordinator address, a loopback coordinator, another key, a wrong host, a wrong and a dropped port across 2 nodes"
