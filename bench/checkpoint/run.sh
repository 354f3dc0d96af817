#!/usr/bin/env bash
# Checkpoint benchmarks (docs/benchmarks-checkpoint.md), run from the repository root:
#  1. step-time overhead: the main MNIST MLP job (examples/mnist_mlp.flags, 2 servers,
#     2 workers, Adam) and the widedeep job (examples/widedeep_a9a.flags: sparse tables
#     with incremental checkpoints, Adagrad) for STEPS steps without checkpoints and with
#     a checkpoint every K steps, alternated REPEATS times in the same run; prints
#     train_s and the overhead. --jobs picks which (default "mlp widedeep").
#  2. write / restore of one server's shard of each size in MB (checkpoint_bench).
# Usage: bench/checkpoint/run.sh [--build DIR] [--steps N] [--every "100 500"]
#                                [--repeats R] [--mb 100,1000] [--dir SCRATCH]
#                                [--jobs "mlp widedeep"]
set -euo pipefail
BUILD=build
STEPS=1000
EVERY="100 500"
REPEATS=2
MB=100,1000
DIR=/tmp/tessera-ckbench
JOBS="mlp widedeep"
while (($#)); do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --mb) MB=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
done
TESSERA="$BUILD/launch/tessera"
mkdir -p "$DIR"

field() { grep '"event":"summary"' "$1" | sed -E "s/.*\"$2\":([0-9.]+).*/\\1/"; }
# Checkpoints committed and the MB they wrote (the sparse tables' are incremental).
ckbytes() {
  awk -F'"bytes_written":' '/"event":"checkpoint"/ {n++; split($2, a, "}"); b += a[1]} END {printf "%d %.1f", n, b / 1e6}' "$1"
}

flagfile() { [[ $1 == mlp ]] && echo examples/mnist_mlp.flags || echo examples/widedeep_a9a.flags; }

run() {  # $1 = job, $2 = K (0: none); prints train_s and the checkpoints committed
  local m="$DIR/m.jsonl" ck="$DIR/ck"
  rm -rf "$ck" "$m"
  local extra=()
  if [[ $2 -gt 0 ]]; then extra=(--checkpoint_dir="$ck" --checkpoint_every_steps="$2" --checkpoint_keep=2); fi
  "$TESSERA" launch --servers 2 --workers 2 --flagfile "$(flagfile "$1")" --steps="$STEPS" \
    --log_every=0 --eval_every=0 --test_limit=1000 --metrics_out="$m" "${extra[@]}" >/dev/null 2>&1
  echo "$(field "$m" train_s) $(ckbytes "$m")"
}

for job in $JOBS; do
  echo "## step time: $STEPS steps of the $job job ($(flagfile "$job")), 2 servers, 2 workers (best of $REPEATS)"
  echo
  echo "| checkpoint every | checkpoints committed | MB written | train_s | overhead vs none |"
  echo "|---|---|---|---|---|"
  declare -A best=()
  for ((r = 0; r < REPEATS; ++r)); do
    for k in 0 $EVERY; do
      read -r t n mb < <(run "$job" "$k")
      if [[ -z "${best[$k]:-}" ]] || awk "BEGIN{exit !($t < ${best[$k]%% *})}"; then best[$k]="$t $n $mb"; fi
    done
  done
  base=${best[0]%% *}
  for k in 0 $EVERY; do
    read -r t n mb <<<"${best[$k]}"
    label=$([[ $k == 0 ]] && echo "none" || echo "$k steps")
    echo "| $label | $n | $mb | $t s | $(awk "BEGIN{printf \"%+.1f%%\", 100*($t-$base)/$base}") |"
  done
  echo
done
echo "## write and restore of one server's shard (values + 2 Adam slots)"
echo
"$BUILD/bench/checkpoint/checkpoint_bench" --mb="$MB" --dir="$DIR/shard"
rm -rf "$DIR"
