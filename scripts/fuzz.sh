#!/usr/bin/env bash
# scripts/fuzz.sh [seconds]: fuzz the wire header codec with libFuzzer.
#
# Configures a separate clang build (build-fuzz/, or $TESSERA_FUZZ_BUILD_DIR) with
# -DTESSERA_FUZZ=ON, ASan and UBSan (every UB report is fatal), builds header_fuzzer,
# writes a seed corpus from valid messages and runs the fuzzer for the given seconds
# (default 60). Exits non-zero when the fuzzer finds a crash; the reproducer is written
# to <build>/fuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTESSERA_FUZZ=ON -DTESSERA_CUDA=OFF -DTESSERA_BUILD_BENCH=OFF \
  -DTESSERA_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" >/dev/null
cmake --build "$build" --target header_fuzzer header_fuzzer_seeds -j"$jobs"

corpus="$build/fuzz/corpus/header"
artifacts="$build/fuzz/artifacts"
mkdir -p "$corpus" "$artifacts"
"$build/tests/fuzz/header_fuzzer_seeds" "$corpus"

# -rss_limit_mb: payload frames are capped at 64 KiB each, so 2 GiB is plenty.
"$build/tests/fuzz/header_fuzzer" \
  -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus"
echo "fuzz.sh: no crash in ${seconds}s"
