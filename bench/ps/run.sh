#!/usr/bin/env bash
# bench/ps/run.sh [build-dir] [rounds]: the push/pull table of docs/benchmarks.md ("Parameter
# servers"). Dense push+pull (one PushPull round trip per iteration, asp, so no worker waits
# for another) for 1-2 servers x 1/2/4 workers x 4 KiB/1 MiB/64 MiB (64 MiB: 1-2 workers),
# sparse push+pull of 4096 random keys from a 10M-key table (D=16), each on one host with
# --shm=auto (the default: shared memory and the local link) and over TCP loopback
# (--shm=off), and in the same rounds the raw-ZeroMQ round trip (TCP loopback, no security)
# and memcpy of the same bytes.
# Every job otherwise runs with the default flags: --auth=auto, i.e. mac with the key
# `tessera launch` makes; --caller_leads=true, which matters over TCP only. AUTH=none|mac|curve
# overrides --auth and SHM=auto|off keeps one transport; the output names the --auth mode the
# processes logged and warns if shared memory fell back to TCP.
# Every cell is the median over the rounds (default 3), ratios the median of the per-round
# ratios, printed too; each round runs every cell once, in reverse order on even rounds, so
# load on a shared machine hits the cells alike. About 1.5 minutes a round on the 2-vCPU VM.
# SIZES (a subset of the three payloads) and ITERS (iterations for every payload and for
# sparse) shorten a run (the tests do).
set -euo pipefail
B=${1:-build}
R=${2:-3}
T="$B/launch/tessera"
P="$B/bench/ps/ps_bench"
flags=()
[ -n "${AUTH:-}" ] && flags+=(--auth="$AUTH")
read -r -a shms <<<"${SHM:-auto off}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

get() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f){s+=kv[2];n++}}} END{printf "%.4f\n", (n && f=="us_per_iter") ? s/n : s}'; }
median() { sort -g "$1" | awk -v fmt="${2:-%.3f}" '{a[NR]=$1} END{printf fmt, NR ? a[int((NR+1)/2)] : 0}'; }
label() { [ "$1" -ge 1048576 ] && echo "$(($1 >> 20)) MiB" || echo "$(($1 >> 10)) KiB"; }
ratios() {  # out numerator-prefix denominator-prefix: per-round ratios into $tmp/out, their median
  local out=$1 r; shift
  for r in $(seq "$R"); do
    awk -v a="$(cat "$tmp/$1.$r")" -v b="$(cat "$tmp/$2.$r")" 'BEGIN{printf "%.3f\n", a/b}'
  done >"$tmp/$out"
  median "$tmp/$out" %.2f
}
run() {  # servers workers shm args...: the workers' RESULT lines; notes the auth mode and shm fallbacks
  local s=$1 w=$2 shm=$3 out; shift 3
  out=$("$T" launch --servers "$s" --workers "$w" --program "$P" -- --sync=asp --shm="$shm" "${flags[@]}" "$@" 2>&1)
  awk '/auth=mac:/{m="mac"} /CURVE authentication/{m="curve"} END{print m ? m : "none"}' <<<"$out" >>"$tmp/auth"
  grep -E 'shared memory off for|shared memory for replies from .* off' <<<"$out" >>"$tmp/fallback" || true
  grep RESULT <<<"$out"
}
iters() { [ -n "${ITERS:-}" ] && echo "$ITERS" && return; case $1 in 4096) echo 2000;; 1048576) echo 1000;; 0) echo 100;; *) echo 20;; esac; }
read -r -a sizes <<<"${SIZES:-4096 1048576 67108864}"

cells=()
for bytes in "${sizes[@]}"; do
  cells+=("b $bytes")
  for s in 1 2; do for w in 1 2 4; do
    [ "$bytes" -ge 67108864 ] && [ "$w" = 4 ] && continue
    for t in "${shms[@]}"; do cells+=("d $bytes $s $w $t"); done
  done; done
done
for s in 1 2; do for w in 1 2 4; do for t in "${shms[@]}"; do cells+=("s 0 $s $w $t"); done; done; done

for r in $(seq "$R"); do
  order=("${cells[@]}")
  if [ $((r % 2)) = 0 ]; then order=(); for ((i = ${#cells[@]} - 1; i >= 0; i--)); do order+=("${cells[i]}"); done; fi
  for c in "${order[@]}"; do
    read -r kind bytes s w t <<<"$c"
    case $kind in
      b) out=$("$P" --bench_mode=baseline --bytes="$bytes" --iters="$(iters "$bytes")")
         get zmq_gbps <<<"$out" >"$tmp/z$bytes.$r"; get memcpy_gbps <<<"$out" >>"$tmp/m$bytes" ;;
      d) out=$(run "$s" "$w" "$t" --bench_mode=dense --bytes="$bytes" --iters="$(iters "$bytes")" \
                 --chunk_bytes=$((bytes > 1048576 ? 16777216 : 1048576)))
         get gbps <<<"$out" >"$tmp/g$bytes.$s.$w.$t.$r"; get us_per_iter <<<"$out" >>"$tmp/u$bytes.$s.$w.$t" ;;
      s) out=$(run "$s" "$w" "$t" --bench_mode=sparse --keys_per_batch=4096 --table_keys=10000000 --dim=16 --iters="$(iters 0)")
         get keys_per_s <<<"$out" >"$tmp/k$s.$w.$t.$r" ;;
    esac
  done
done

echo "flags: --shm=${shms[*]} ${flags[*]:-(--auth default)}; --auth as the processes logged it: $(sort -u "$tmp/auth" | tr '\n' ' ')"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $R rounds, medians"
if [ -s "$tmp/fallback" ]; then echo "WARNING: shared memory fell back to TCP $(wc -l <"$tmp/fallback") times: $(sort -u "$tmp/fallback" | head -3)"; fi
cat_rounds() { for r in $(seq "$R"); do cat "$tmp/$1.$r"; done >"$tmp/$1"; }
both=$([ "${#shms[@]}" = 2 ] && echo 1 || echo 0)
echo
head="| payload | raw ZeroMQ GB/s | memcpy GB/s | servers | workers |"
rule="|---|--:|--:|--:|--:|"
for t in "${shms[@]}"; do head="$head --shm=$t GB/s (sum over workers) | µs per push+pull | / raw ZeroMQ |"; rule="$rule--:|--:|--:|"; done
[ "$both" = 1 ] && head="$head auto / off |" && rule="$rule--:|"
echo "$head"; echo "$rule"
for bytes in "${sizes[@]}"; do
  cat_rounds "z$bytes"
  for s in 1 2; do for w in 1 2 4; do
    [ -f "$tmp/g$bytes.$s.$w.${shms[0]}.1" ] || continue
    row="| $(label "$bytes") | $(median "$tmp/z$bytes") | $(median "$tmp/m$bytes" %.1f) | $s | $w |"
    for t in "${shms[@]}"; do
      cat_rounds "g$bytes.$s.$w.$t"
      row="$row $(median "$tmp/g$bytes.$s.$w.$t") | $(median "$tmp/u$bytes.$s.$w.$t" %.0f) | $(ratios "q$bytes.$s.$w.$t" "g$bytes.$s.$w.$t" "z$bytes") |"
      echo "$(label "$bytes") ${s}x$w --shm=$t / raw: $(tr '\n' ' ' <"$tmp/q$bytes.$s.$w.$t")" >>"$tmp/rounds"
    done
    if [ "$both" = 1 ]; then
      row="$row $(ratios "a$bytes.$s.$w" "g$bytes.$s.$w.auto" "g$bytes.$s.$w.off") |"
      echo "$(label "$bytes") ${s}x$w auto / off: $(tr '\n' ' ' <"$tmp/a$bytes.$s.$w")" >>"$tmp/rounds"
    fi
    echo "$row"
  done; done
  echo "$(label "$bytes") raw ZeroMQ GB/s: $(tr '\n' ' ' <"$tmp/z$bytes")" >>"$tmp/rounds"
done
echo
head="| sparse, 4096 keys x D=16 | servers | workers |"; rule="|---|--:|--:|"
for t in "${shms[@]}"; do head="$head --shm=$t keys/s (sum over workers) |"; rule="$rule--:|"; done
[ "$both" = 1 ] && head="$head auto / off |" && rule="$rule--:|"
echo "$head"; echo "$rule"
for s in 1 2; do for w in 1 2 4; do
  row="| | $s | $w |"
  for t in "${shms[@]}"; do cat_rounds "k$s.$w.$t"; row="$row $(median "$tmp/k$s.$w.$t" %.0f) |"; done
  if [ "$both" = 1 ]; then
    row="$row $(ratios "ks$s.$w" "k$s.$w.auto" "k$s.$w.off") |"
    echo "sparse ${s}x$w auto / off: $(tr '\n' ' ' <"$tmp/ks$s.$w")" >>"$tmp/rounds"
  fi
  echo "$row"
done; done
echo
echo "Per round (round 1 first):"
cat "$tmp/rounds"
