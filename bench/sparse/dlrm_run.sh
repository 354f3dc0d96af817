#!/usr/bin/env bash
# bench/sparse/dlrm_run.sh [build-dir] [rows]: DLRM throughput through the parameter
# servers (docs/benchmarks-sparse.md, "DLRM"). In one run, on the same generated data
# (`tessera datagen criteo --rows ROWS --seed 1`, default 200000 rows):
#  - baseline: sparse_local_bench --model=dlrm, the same workload code and optimizer in
#    one process with no network (rows in the servers' ShardStore);
#  - `tessera launch --model=dlrm` with 2 servers and 1, 2 and 4 workers, bsp, 1 epoch,
#    D=16, 64-16 bottom MLP, 64-32-1 top MLP, 256 rows per step, AdaGrad.
# Prints a markdown table: samples/s of the job, per worker, per worker / baseline, and
# job / 1-worker job.
set -euo pipefail
B=${1:-build}
ROWS=${2:-200000}
T="$B/launch/tessera"
L="$B/bench/sparse/sparse_local_bench"
field() { grep -o "\"$1\":[0-9.e+-]*" | head -1 | cut -d: -f2; }
kv() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.0f", s}'; }
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
"$T" datagen criteo --rows "$ROWS" --valid_rows 10000 --seed 1 -o "$DATA" | tail -1

FLAGS="--model=dlrm --data=$DATA --embed_dim=16 --bottom_mlp=64 --hidden=64,32 --batch_size=256 --epochs=1 \
--optimizer=adagrad --lr=0.05 --seed=1 --sync=bsp --log_every=0"

echo "baseline (one process, no network), same run:"
b=$("$L" --model=dlrm --data="$DATA" --train_limit=0 --embed_dim=16 --hidden=64,32 --batch_size=256 --lr=0.05)
echo "$b"
base=$(echo "$b" | kv samples_per_s)
echo
echo "| servers | workers | samples/s (job) | samples/s per worker | per worker / 1-process baseline | job / 1-worker job | test AUC |"
echo "|---|---|---|---|---|---|---|"
one=""
for w in 1 2 4; do
  out=$("$T" launch --servers 2 --workers "$w" $FLAGS 2>&1 | grep 'summary:' || true)
  sps=$(echo "$out" | field samples_per_sec); auc=$(echo "$out" | field test_auc)
  [ -z "$one" ] && one=$sps
  per=$(awk -v a="$sps" -v w="$w" 'BEGIN{printf "%.0f", a/w}')
  ratio=$(awk -v a="$per" -v b="$base" 'BEGIN{printf "%.2f", a/b}')
  scale=$(awk -v a="$sps" -v b="$one" 'BEGIN{printf "%.2f", a/b}')
  echo "| 2 | $w | $sps | $per | $ratio | $scale | $auc |"
done
