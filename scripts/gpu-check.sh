#!/usr/bin/env bash
# Proves Tessera's GPU path on one GPU machine, in one command (issue 19; docs/training.md
# "GPU workers"):
#   scripts/gpu-check.sh [BUILD_DIR]          (default: build-gpu)
# Steps, each bounded by a timeout, then ONE summary table naming the GPU:
#   0. preflight: an NVIDIA driver that shows a GPU (nvidia-smi), nvcc, cmake, ninja and
#      mpirun; what is missing is named and the script exits 2 before building anything;
#   1. configure (CUDA on, only this GPU's architecture, Release, ccache when present) and
#      build only what the checks below run;
#   2. every gpu-labelled test: kernels_gpu_test's cases in one process, the others
#      through ctest -L gpu; a GPU test that skips on this machine is listed as skipped
#      (e.g. the NCCL cases that need two GPUs, on a one-GPU machine);
#   3. the MNIST main job (examples/mnist_mlp.flags: 784-256-128-10, Adam, 20 epochs,
#      global batch 512) on ONE GPU worker (--workers 1 --batch_size=512): test accuracy
#      >= 98%;
#   4. mpirun -np 4 tessera train --sync=allreduce --device=cuda: the coordinator, one
#      server and TWO worker ranks. With one GPU both workers share it, and since NCCL
#      needs a GPU per rank they all-reduce over MPI from pinned host memory (the log
#      says so); with two or more GPUs NCCL all-reduces on the devices;
#   5. kernels_gpu_bench: GEMM TFLOP/s against cublasSgemm and fused Adam GB/s against a
#      device-to-device cudaMemcpy, on this GPU in the same run.
# Budget: under 8 minutes on one H100 with 16 cores, build included (the build dominates;
# ccache makes a second run short). The table's last row checks it.
# Exit: 0 every step passed; 1 a check failed (the table says which); 2 this machine lacks
# something the check needs (named on stderr).
# Test seams (tests/scripts/gpu_check_test.cc): NVIDIA_SMI and NVCC name the tools;
# GPU_CHECK_REUSE_BUILD=1 skips configure and build and uses BUILD_DIR as it is.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BUILD=${1:-build-gpu}
JOBS=$(nproc)
START=$SECONDS
BUDGET_S=480
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

step() { printf '\n==== gpu-check: %s (%s, %d s in)\n' "$*" "$(date +%T)" "$((SECONDS - START))"; }
missing() {
  echo "gpu-check: this machine cannot run the GPU check: $*" >&2
  exit 2
}

# ---- 0. preflight --------------------------------------------------------------------
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
if ! command -v "$NVIDIA_SMI" >/dev/null 2>&1; then
  missing "no NVIDIA driver ($NVIDIA_SMI not found): no GPU is visible here"
fi
if ! GPU_LIST=$("$NVIDIA_SMI" -L 2>&1) || ! grep -q '^GPU [0-9]' <<<"$GPU_LIST"; then
  missing "no GPU visible ($NVIDIA_SMI -L: $(head -c 300 <<<"$GPU_LIST" | tr '\n' ' '))"
fi
if [ "${CUDA_VISIBLE_DEVICES+set}" = set ] && [ -z "$CUDA_VISIBLE_DEVICES" ]; then
  missing "CUDA_VISIBLE_DEVICES is set and empty: it hides every GPU"
fi
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || missing "no CUDA compiler (nvcc not in PATH nor at $NVCC): install the CUDA toolkit"
for tool in cmake ninja mpirun; do
  command -v "$tool" >/dev/null 2>&1 || missing "no $tool in PATH"
done
GPU_NAME=$("$NVIDIA_SMI" --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
GPU_COUNT=$(grep -c '^GPU [0-9]' <<<"$GPU_LIST")
CAP=$("$NVIDIA_SMI" --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
[[ "$CAP" =~ ^[0-9]+$ ]] || CAP=90  # an old driver without compute_cap: build for Hopper
echo "gpu-check: $GPU_COUNT GPU(s), the first: $GPU_NAME (sm_$CAP); building in $BUILD with $JOBS jobs"

declare -a ROWS=()
FAILED=0
row() {  # name, PASS/FAIL/SKIP, figure, seconds
  ROWS+=("$(printf '| %-34s | %-4s | %-64s | %5s s |' "$1" "$2" "$3" "$4")")
  [ "$2" = FAIL ] && FAILED=1
  return 0
}
summary() {
  local total=$((SECONDS - START))
  if [ "$total" -lt "$BUDGET_S" ]; then row "total time (budget $BUDGET_S s)" PASS "" "$total"
  else row "total time (budget $BUDGET_S s)" FAIL "over the 8-minute budget" "$total"; fi
  printf '\n==== gpu-check summary: %s (%s GPU(s), sm_%s), %s\n' "$GPU_NAME" "$GPU_COUNT" "$CAP" "$(date -u +%FT%TZ)"
  printf '| %-34s | %-4s | %-64s | %7s |\n' "check" "ok" "figure" "time"
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "------" "$(printf -- '-%.0s' {1..66})" "---------"
  printf '%s\n' "${ROWS[@]}"
  [ -n "${BENCH_TABLE:-}" ] && printf '\nkernels (same GPU, same run):\n%s\n' "$BENCH_TABLE"
  exit "$FAILED"
}

# ---- 1. configure and build ----------------------------------------------------------
step "configure and build (sm_$CAP)"
t0=$SECONDS
if [ "${GPU_CHECK_REUSE_BUILD:-0}" = 1 ]; then
  row "build (reused $BUILD as it is)" PASS "" 0
else
LAUNCHERS=()
if command -v ccache >/dev/null 2>&1; then
  LAUNCHERS=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
TARGETS=(tessera kernels_gpu_bench kernels_gpu_test nccl_test nccl_rendezvous_test gpu_job_test worker_sparse_gpu_test)
if ! timeout 420 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTESSERA_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CAP" "${LAUNCHERS[@]}" >"$BUILD.configure.log" 2>&1; then
  tail -30 "$BUILD.configure.log"
  row "configure (CUDA on)" FAIL "see $BUILD.configure.log" $((SECONDS - t0))
  summary
fi
if ! timeout 420 ninja -C "$BUILD" -j "$JOBS" "${TARGETS[@]}" >"$BUILD.build.log" 2>&1; then
  grep -E 'error|FAILED' "$BUILD.build.log" | head -30
  row "build ${#TARGETS[@]} targets" FAIL "see $BUILD.build.log" $((SECONDS - t0))
  summary
fi
row "build ${#TARGETS[@]} targets (sm_$CAP)" PASS "" $((SECONDS - t0))
fi
TESSERA=$ROOT/$BUILD/launch/tessera

# ---- 2. gpu-labelled tests -----------------------------------------------------------
# kernels_gpu_test's cases (label gpu, ctest names "gpu.*") run as ONE process: the same
# cases, without a CUDA context per case (about 560 of them); ctest runs the rest.
step "gpu-labelled tests"
t0=$SECONDS
LOG=$BUILD/gpu-check-kernels-tests.log
timeout 180 "$BUILD/tests/kernels/kernels_gpu_test" --gtest_brief=1 >"$LOG" 2>&1
rc=$?
tail -5 "$LOG"
KP=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$LOG" | tail -1)
KS=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$LOG" | tail -1)
if [ "$rc" -eq 0 ] && [ -n "$KP" ] && [ "${KS:-0}" -eq 0 ]; then
  row "kernels vs CPU backend (gpu.*)" PASS "$KP passed" $((SECONDS - t0))
else
  grep -E '^\[  FAILED  \]|Failure' "$LOG" | head -10
  row "kernels vs CPU backend (gpu.*)" FAIL "exit $rc, ${KP:-0} passed, ${KS:-0} skipped ($LOG)" $((SECONDS - t0))
fi
t0=$SECONDS
LOG=$BUILD/gpu-check-ctest.log
timeout 300 ctest --test-dir "$BUILD" -L gpu -E '^gpu[.]' -j 4 --output-on-failure >"$LOG" 2>&1
rc=$?
tail -15 "$LOG"
PASSED=$(grep -cE 'Test +#[0-9]+: .* Passed' "$LOG")
SKIPPED=$(grep -cE '[*]{3}Skipped|Not Run' "$LOG")
FAILED_T=$(grep -cE '[*]{3}(Failed|Timeout|Exception)' "$LOG")
if [ "$rc" -eq 0 ] && [ "$PASSED" -gt 0 ]; then
  row "other gpu-labelled tests (ctest)" PASS "$PASSED passed, $SKIPPED skipped" $((SECONDS - t0))
else
  row "other gpu-labelled tests (ctest)" FAIL "$PASSED passed, $FAILED_T failed, $SKIPPED skipped ($LOG)" $((SECONDS - t0))
fi
grep -E '[*]{3}Skipped' "$LOG" | head -10

# accuracy of the summary line in file $1 (empty when there is none)
accuracy() { sed -n 's/.*summary: .*"test_accuracy":\([0-9.]*\).*/\1/p' "$1" | tail -1; }

# ---- 3. the MNIST main job on one GPU --------------------------------------------------
step "MNIST main job on 1 GPU worker"
t0=$SECONDS
LOG=$BUILD/gpu-check-main-job.log
timeout 240 "$TESSERA" launch --servers 2 --workers 1 --flagfile examples/mnist_mlp.flags --batch_size=512 \
  --device=cuda --data="$ROOT/data/mnist" >"$LOG" 2>&1
rc=$?
ACC=$(accuracy "$LOG")
grep -E 'CUDA device|summary:' "$LOG" | cut -c1-200
if [ "$rc" -eq 0 ] && [ -n "$ACC" ] && awk -v a="$ACC" 'BEGIN { exit !(a >= 0.98) }'; then
  row "MNIST main job, 1 GPU (>= 98%)" PASS "test accuracy $ACC" $((SECONDS - t0))
else
  tail -20 "$LOG"
  row "MNIST main job, 1 GPU (>= 98%)" FAIL "exit $rc, test accuracy ${ACC:-none} ($LOG)" $((SECONDS - t0))
fi

# ---- 4. mpirun -np 4 --sync=allreduce -----------------------------------------------------
step "mpirun -np 4 --sync=allreduce --device=cuda (2 workers)"
t0=$SECONDS
LOG=$BUILD/gpu-check-allreduce.log
SHARE="NCCL, a GPU per worker"
[ "$GPU_COUNT" -lt 2 ] && SHARE="both workers on GPU 0: MPI from pinned host memory"
timeout 180 mpirun -np 4 --oversubscribe "$TESSERA" train --servers 1 --sync=allreduce --device=cuda \
  --flagfile examples/mnist_mlp_quick.flags --data="$ROOT/data/mnist" --log_every=0 >"$LOG" 2>&1
rc=$?
ACC=$(accuracy "$LOG")
grep -E 'NCCL|share a GPU|summary:' "$LOG" | cut -c1-200
if [ "$rc" -eq 0 ] && [ -n "$ACC" ] && awk -v a="$ACC" 'BEGIN { exit !(a >= 0.90) }'; then
  row "allreduce, 2 workers (>= 90%)" PASS "accuracy $ACC; $SHARE" $((SECONDS - t0))
else
  tail -20 "$LOG"
  row "allreduce, 2 workers (>= 90%)" FAIL "exit $rc, accuracy ${ACC:-none} ($LOG)" $((SECONDS - t0))
fi

# ---- 5. kernels benchmark -------------------------------------------------------------------
step "kernels_gpu_bench"
t0=$SECONDS
LOG=$BUILD/gpu-check-bench.log
timeout 120 "$BUILD/bench/kernels/kernels_gpu_bench" >"$LOG" 2>&1
rc=$?
cat "$LOG"
BENCH_TABLE=$(grep -E '^(GPU:|\|)' "$LOG")
if [ "$rc" -eq 0 ]; then
  while IFS='|' read -r what unit tess base name ratio; do
    row "$(echo "$what" | xargs) vs $(echo "$name" | xargs)" PASS \
      "$(echo "$tess" | xargs) vs $(echo "$base" | xargs) $(echo "$unit" | xargs) (x$(echo "$ratio" | xargs))" \
      $((SECONDS - t0))
  done < <(sed -n 's/^gpu_bench: //p' "$LOG")
else
  row "kernels benchmark" FAIL "exit $rc ($LOG)" $((SECONDS - t0))
fi

summary
