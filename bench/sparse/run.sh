#!/usr/bin/env bash
# bench/sparse/run.sh [build-dir]: the sparse models' throughput through the parameter
# servers (docs/benchmarks-sparse.md). In one run:
#  - baseline: sparse_local_bench, the same workload code and optimizer in one process
#    with no network (rows in the servers' ShardStore, and in flat arrays);
#  - word2vec (text8-head, first 200000 tokens, D=100, 1 epoch) and widedeep (a9a, 1
#    epoch) through `tessera launch` with 1/2/4 workers x 1/2 servers, bsp;
#  - the sparse push+pull micro-benchmark (bench/ps) at the same keys per request and D.
set -euo pipefail
B=${1:-build}
T="$B/launch/tessera"
L="$B/bench/sparse/sparse_local_bench"
P="$B/bench/ps/ps_bench"
field() { grep -o "\"$1\":[0-9.e+-]*" | head -1 | cut -d: -f2; }
kv() { awk -v f="$1" '{for(i=1;i<=NF;i++){split($i,kv,"=");if(kv[1]==f)s+=kv[2]}} END{printf "%.0f", s}'; }

W2V="--model=word2vec --data=data/text8-head --train_limit=200000 --embed_dim=100 --window=5 --negatives=5 \
--min_count=5 --subsample=1e-4 --batch_size=256 --epochs=1 --optimizer=adagrad --lr=0.2 --grad_reduce=sum --log_every=0"
WD="--model=widedeep --data=data/a9a --embed_dim=8 --hidden=64,32 --batch_size=64 --epochs=1 --optimizer=adagrad \
--lr=0.02 --log_every=0"

echo "baseline (one process, no network), same run:"
b_ss=$("$L" --model=word2vec --data=data/text8-head --train_limit=200000 --embed_dim=100 --store=shardstore)
b_ar=$("$L" --model=word2vec --data=data/text8-head --train_limit=200000 --embed_dim=100 --store=arrays)
b_wd=$("$L" --model=widedeep --data=data/a9a --train_limit=0 --embed_dim=8 --batch_size=64 --lr=0.02)
echo "$b_ss"; echo "$b_ar"; echo "$b_wd"
base_w2v=$(echo "$b_ss" | kv samples_per_s)
base_w2v_arr=$(echo "$b_ar" | kv samples_per_s)
base_wd=$(echo "$b_wd" | kv samples_per_s)
echo
echo "| model | servers | workers | samples/s (job) | samples/s per worker | keys/s per worker (push+pull) | per worker / 1-process baseline | keys per request | micro-bench keys/s (push+pull, same keys, D) |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in word2vec widedeep; do
  if [ "$model" = word2vec ]; then flags=$W2V; base=$base_w2v; dim=100; else flags=$WD; base=$base_wd; dim=8; fi
  for s in 1 2; do
    for w in 1 2 4; do
      out=$("$T" launch --servers "$s" --workers "$w" $flags 2>&1 | grep 'summary:' || true)
      sps=$(echo "$out" | field samples_per_sec); steps=$(echo "$out" | field steps)
      kp=$(echo "$out" | field keys_pushed); kl=$(echo "$out" | field keys_pulled); train=$(echo "$out" | field train_s)
      per=$(awk -v a="$sps" -v w="$w" 'BEGIN{printf "%.0f", a/w}')
      keys=$(awk -v a="$kp" -v b="$kl" -v t="$train" 'BEGIN{printf "%.0f", (a+b)/t}')
      ratio=$(awk -v a="$per" -v b="$base" 'BEGIN{printf "%.2f", a/b}')
      kpr=$(awk -v a="$kp" -v n="$steps" 'BEGIN{printf "%.0f", a/n/2}')
      micro=$("$T" launch --servers "$s" --workers "$w" --program "$P" -- --sync=asp --bench_mode=sparse \
              --keys_per_batch="$kpr" --table_keys=20000 --dim="$dim" --iters=100 2>/dev/null | grep RESULT | kv keys_per_s)
      echo "| $model | $s | $w | $sps | $per | $keys | $ratio | $kpr | $micro |"
    done
  done
done
echo
echo "word2vec baseline with flat arrays instead of ShardStore: $base_w2v_arr words/s"
