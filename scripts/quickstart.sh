#!/usr/bin/env bash
# Quick start: install what is missing, build, and train the MNIST MLP end to end
# (1 coordinator, 2 parameter servers, 2 workers on this machine) to >= 98% test
# accuracy. Prints the run's summary line at the end.
#
# Usage: scripts/quickstart.sh [--quick] [extra tessera train flags...]
#   --quick   the few-second smoke run (examples/mnist_mlp_quick.flags)
#
# Metrics go to out/mnist_mlp.metrics.jsonl (docs/training.md); checkpoints to
# out/mnist_mlp.ckpt every 4 epochs, the last one at the final step (docs/checkpoints.md).
# Each run starts afresh: the previous run's checkpoints are removed first (to resume
# instead, run `tessera launch` with the same --checkpoint_dir yourself).
set -euo pipefail
cd "$(dirname "$0")/.."

FLAGS=examples/mnist_mlp.flags
METRICS=out/mnist_mlp.metrics.jsonl
CKPT=out/mnist_mlp.ckpt
EVERY=472   # 4 epochs of 118 steps (2 workers, batch 256): the 20th epoch's last step is one
if [[ "${1:-}" == "--quick" ]]; then
  FLAGS=examples/mnist_mlp_quick.flags
  METRICS=out/mnist_mlp_quick.metrics.jsonl
  CKPT=out/mnist_mlp_quick.ckpt
  EVERY=94    # one epoch; the run's last step (282) is a multiple
  shift
fi

scripts/setup.sh
cmake -S . -B build -G Ninja
cmake --build build
mkdir -p out
rm -rf "$CKPT"
build/launch/tessera launch --servers 2 --workers 2 --flagfile "$FLAGS" \
  --metrics_out="$METRICS" --checkpoint_dir="$CKPT" --checkpoint_every_steps="$EVERY" "$@"
echo
echo "checkpoints: $CKPT"
build/launch/tessera ckpt ls "$CKPT"
echo
echo "metrics: $METRICS"
tail -n 1 "$METRICS"
