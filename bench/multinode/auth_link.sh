#!/usr/bin/env bash
# bench/multinode/auth_link.sh [BUILD_DIR] [ROUNDS]: what --auth=mac (the default) costs
# against --auth=none for a dense push+pull between two hosts, on the namespace cluster of
# tests/multinode (root needed): the server on tn2, coordinator and worker on tn1, TCP
# over their veth pairs and the bridge; raw ZeroMQ between the same two namespaces
# (ps_bench --bench_mode=baseline --echo_bind/--echo_connect) is the baseline of each
# round. Rounds alternate the modes, so machine load hits them alike; each cell is the
# median over ROUNDS (default 5).
#
# LINK_RATE=10gbit (any tc rate; default none) caps each node's egress with a token
# bucket (tc tbf on its eth0), so the link, not this machine's two shared cores, sets the
# transfer time, as between real hosts. Without it, both "hosts" share the cores and the
# kernel's TCP stack, and every pass over the bytes competes with the transfer itself.
# SIZES (default "1048576 67108864"), CHUNKS (--chunk_bytes values, default "1048576";
# a 64 MiB tensor is cut into requests of at most this many bytes, which the server
# applies while the next ones travel). A_FLAGS and B_FLAGS (default `--auth=none` and the
# job key, i.e. --auth=mac) replace the two compared modes, e.g. A_FLAGS="--auth=none
# --caller_leads=false" B_FLAGS="--auth=none --caller_leads=true" SIZES=4096; the columns
# keep their names (none = A, mac = B). ITERS (default 400 at 4 KiB, 60 at 1 MiB, 4 at
# 64 MiB) sets every run's iterations: at 400 a 4 KiB run lasts 50 ms and rounds spread 4x.
#
# Prints one markdown table per chunk size: payload, raw ZeroMQ µs, none µs, mac µs,
# mac / none, none / raw (a round trip's time; above 1 is slower).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
BUILD="$(cd "${1:-build}" && pwd)"
ROUNDS="${2:-5}"
SIZES="${SIZES:-1048576 67108864}"
CHUNKS="${CHUNKS:-1048576}"
P="$BUILD/bench/ps/ps_bench"
[ -x "$P" ] || { echo "auth_link.sh: $P not built" >&2; exit 2; }
# shellcheck source=/dev/null
. "$SRC/tests/multinode/lib.sh"
# shellcheck source=/dev/null
. "$SRC/tests/multinode/job_lib.sh"
mn_require
command -v tc >/dev/null || mn_fail "missing tc (Debian package iproute2)"
mn_setup 2
KEY="--auth_key_file=$MN_TMP/job.key"
A_FLAGS="${A_FLAGS:---auth=none}"
B_FLAGS="${B_FLAGS:-$KEY}"
TJ_PORT=29600
ADDR2="$(echo "$TESSERA_MN_ADDRS" | awk '{print $2}')"

if [ -n "${LINK_RATE:-}" ]; then
  for n in tn1 tn2; do
    # burst: a few ms at the rate, so the bucket never holds back a single TSO packet.
    mn_exec "$n" tc qdisc add dev eth0 root tbf rate "$LINK_RATE" burst 4mb latency 50ms ||
      mn_fail "tc tbf rate $LINK_RATE on $n"
  done
fi

iters_for() { if [ -n "${ITERS:-}" ]; then echo "$ITERS"; elif [ "$1" -ge 67108864 ]; then echo 4; elif [ "$1" -ge 1048576 ]; then echo 60; else echo 400; fi; }

# raw BYTES: µs per raw ZeroMQ round trip tn1 -> tn2 -> tn1.
raw() {
  local bytes="$1" iters port epid us
  iters="$(iters_for "$bytes")"
  port=$((29800 + RANDOM % 100))
  mn_exec tn2 timeout 120 "$P" --bench_mode=baseline --bytes="$bytes" --iters="$iters" \
    --echo_bind="tcp://$ADDR2:$port" > "$MN_TMP/echo.log" 2>&1 &
  epid=$!
  sleep 0.3
  us="$(mn_exec tn1 timeout 120 "$P" --bench_mode=baseline --bytes="$bytes" --iters="$iters" \
        --echo_connect="tcp://$ADDR2:$port" | grep -o 'zmq_us_per_iter=[0-9.]*' | cut -d= -f2)"
  wait "$epid" || true
  echo "$us"
}

# tessera BYTES CHUNK FLAGS (one word per flag): µs per push+pull round trip, worker on tn1, server on tn2.
tessera() {
  local bytes="$1" chunk="$2" iters r pids=() layout=(tn1 tn2 tn1) auth
  read -ra auth <<< "$3"
  iters="$(iters_for "$bytes")"
  TJ_PORT=$((TJ_PORT + 1))
  rm -f "$MN_TMP"/dense.r*
  for r in 0 1 2; do
    tj_bare "${layout[$r]}" "$r" 3 "$MN_TMP/dense.r$r" timeout 300 "$P" --servers 1 --workers 1 --sync=asp "${auth[@]}" \
      --bench_mode=dense --bytes="$bytes" --iters="$iters" --chunk_bytes="$chunk"
    pids+=($!)
  done
  for r in "${pids[@]}"; do wait "$r" || true; done
  grep -ho 'us_per_iter=[0-9.]*' "$MN_TMP"/dense.r* | head -1 | cut -d= -f2
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR ? a[int((NR+1)/2)] : "n/a")}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a/b }'; }

echo "# link: ${LINK_RATE:-uncapped veth}; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for chunk in $CHUNKS; do
  echo
  echo "--chunk_bytes=$chunk, link ${LINK_RATE:-uncapped}, $ROUNDS rounds:"
  echo
  echo "| payload | raw ZeroMQ µs | none µs | mac µs | mac / none | none / raw |"
  echo "|--:|--:|--:|--:|--:|--:|"
  for bytes in $SIZES; do
    R="" N="" M="" MN=""
    for i in $(seq "$ROUNDS"); do
      r="$(raw "$bytes")"
      if [ $((i % 2)) = 1 ]; then n="$(tessera "$bytes" "$chunk" "$A_FLAGS")"; m="$(tessera "$bytes" "$chunk" "$B_FLAGS")"
      else m="$(tessera "$bytes" "$chunk" "$B_FLAGS")"; n="$(tessera "$bytes" "$chunk" "$A_FLAGS")"; fi
      if [ -z "$n" ] || [ -z "$m" ]; then tail -5 "$MN_TMP"/dense.r*; mn_fail "a Tessera run of $bytes bytes failed"; fi
      R="$R $r" N="$N $n" M="$M $m" MN="$MN $(ratio "$m" "$n")"
      echo "#   round $i, $bytes B: raw $r, none $n, mac $m µs" >&2
    done
    rm="$(echo "$R" | median)" nm="$(echo "$N" | median)" mm="$(echo "$M" | median)"
    echo "| $bytes | $rm | $nm | $mm | $(echo "$MN" | median) | $(ratio "$nm" "$rm") |"
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
mn_pass "auth link bench"
