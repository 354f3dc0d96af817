#!/usr/bin/env bash
# Quick start: install what is missing, build, and train the MNIST MLP end to end
# (1 coordinator, 2 parameter servers, 2 workers on this machine) to >= 98% test
# accuracy. Prints the run's summary line at the end.
#
# Usage: scripts/quickstart.sh [--quick] [extra tessera train flags...]
#   --quick   the few-second smoke run (examples/mnist_mlp_quick.flags)
#
# Metrics go to out/mnist_mlp.metrics.jsonl (docs/training.md). Checkpointing comes with
# a later issue: this run does not write or resume a checkpoint yet.
set -euo pipefail
cd "$(dirname "$0")/.."

FLAGS=examples/mnist_mlp.flags
METRICS=out/mnist_mlp.metrics.jsonl
if [[ "${1:-}" == "--quick" ]]; then
  FLAGS=examples/mnist_mlp_quick.flags
  METRICS=out/mnist_mlp_quick.metrics.jsonl
  shift
fi

scripts/setup.sh
cmake -S . -B build -G Ninja
cmake --build build
mkdir -p out
build/launch/tessera launch --servers 2 --workers 2 --flagfile "$FLAGS" \
  --metrics_out="$METRICS" "$@"
echo
echo "metrics: $METRICS"
tail -n 1 "$METRICS"
