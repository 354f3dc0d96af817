#!/usr/bin/env bash
# scripts/fuzz.sh [seconds] [target...]: fuzz Tessera's decoders with libFuzzer.
#
# Targets (default: all): header (wire header codec), payload (the parameter server's
# data path: codec + request decoding + ParamServerCore), manifest (checkpoint MANIFEST
# reader), data (LIBSVM, IDX and text-corpus loaders), mac (the --auth=mac framing:
# sealing, tag and replay checks, handshake). Each runs for the given seconds
# (default 60 each).
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
[ ${#targets[@]} -eq 0 ] && targets=(header payload manifest data mac)
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${TESSERA_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${JOBS:-2}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DTESSERA_FUZZ=ON -DTESSERA_CUDA=OFF -DTESSERA_BUILD_BENCH=OFF \
  -DTESSERA_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" >/dev/null
build_targets=()
for t in "${targets[@]}"; do
  build_targets+=("${t}_fuzzer")
  [ "$t" != data ] && [ "$t" != mac ] && build_targets+=("${t}_fuzzer_seeds")
done
cmake --build "$build" --target "${build_targets[@]}" -j"$jobs"

artifacts="$build/fuzz/artifacts"
mkdir -p "$artifacts"
for t in "${targets[@]}"; do
  corpus="$build/fuzz/corpus/$t"
  mkdir -p "$corpus"
  if [ "$t" = data ]; then
    # First byte picks the loader (tests/fuzz/data_fuzzer.cc); heads of the real files.
    # (head closes the pipe early: no pipefail here.)
    set +o pipefail
    { printf '\000'; zcat "$root/data/a9a/a9a.t.gz" | head -n 20; } > "$corpus/libsvm"
    { printf '\001'; \
      printf '\000\000\010\001\000\000\000\040'; zcat "$root/data/mnist/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c 32; } > "$corpus/idx-labels"
    { printf '\002\000\000\010\003\000\000\000\002\000\000\000\034\000\000\000\034'; \
      zcat "$root/data/mnist/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c 1568; } > "$corpus/idx-images"
    { printf '\003'; zcat "$root/data/text8-head/text8.split.head.gz" | head -c 3000; } > "$corpus/corpus"
    set -o pipefail
  elif [ "$t" = mac ]; then
    # First byte: mode (tests/fuzz/mac_fuzzer.cc), second: frame count.
    printf '\000\001header-bytes-0123payload\000\000\000\000\000\000\000\000' > "$corpus/sealed-intact"
    printf '\000\002header-bytes-0123payload\000\001' > "$corpus/sealed-altered"
    printf '\001\001header-bytes-0123trailer-0123456789abcdef' > "$corpus/raw"
    printf '\002\000TSAH\001\001\001\000' > "$corpus/hello-prefix"
  else
    "$build/tests/fuzz/${t}_fuzzer_seeds" "$corpus"
  fi
  # -rss_limit_mb: payload frames are capped at 64 KiB each, so 2 GiB is plenty.
  "$build/tests/fuzz/${t}_fuzzer" \
    -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/${t}-" "$corpus"
  echo "fuzz.sh: $t: no crash in ${seconds}s"
done
