#!/usr/bin/env bash
# scripts/fuzz.sh [seconds] [target...]: fuzz Tessera's decoders with libFuzzer.
#
# Targets (default: all): header (wire header codec), payload (the parameter server's
# data path: codec + request decoding + ParamServerCore). Each runs for the given
# seconds (default 60 each).
#
# Configures a separate clang build (build-fuzz/, or $TESSERA_FUZZ_BUILD_DIR) with
# -DTESSERA_FUZZ=ON, ASan and UBSan (every UB report is fatal), builds the fuzzers,
# writes seed corpora from valid messages and runs each fuzzer. Exits non-zero when a
# fuzzer finds a crash; the reproducer is written to <build>/fuzz/artifacts/<target>-*
# (turn each one into a regression test next to the decoder's unit tests).
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(header payload)
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTESSERA_FUZZ=ON -DTESSERA_CUDA=OFF -DTESSERA_BUILD_BENCH=OFF \
  -DTESSERA_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" >/dev/null
build_targets=()
for t in "${targets[@]}"; do build_targets+=("${t}_fuzzer" "${t}_fuzzer_seeds"); done
cmake --build "$build" --target "${build_targets[@]}" -j"$jobs"

artifacts="$build/fuzz/artifacts"
mkdir -p "$artifacts"
for t in "${targets[@]}"; do
  corpus="$build/fuzz/corpus/$t"
  mkdir -p "$corpus"
  "$build/tests/fuzz/${t}_fuzzer_seeds" "$corpus"
  # -rss_limit_mb: payload frames are capped at 64 KiB each, so 2 GiB is plenty.
  "$build/tests/fuzz/${t}_fuzzer" \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/${t}-" "$corpus"
  echo "fuzz.sh: $t: no crash in ${seconds}s"
done
