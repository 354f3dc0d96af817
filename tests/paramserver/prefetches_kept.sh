#!/usr/bin/env bash
# prefetches_kept.sh BINARY [KERNELS]: the row store's prefetches are in the machine code
# (and the sparse optimizer's row prefetches, kernels/cpu/cpu_optimizer.cc, in KERNELS's).
# GCC 12 at -O2 deleted every record prefetch of RowTable (a function whose only effect is
# __builtin_prefetch was dropped at its call sites), silently: results stay right, only
# each pulled key waits for its record (docs/benchmarks-sparse-latency.md, "The prefetches
# the compiler deleted"). This counts prefetcht0 instructions per function in BINARY (an
# executable or a static library) against what the source issues: the pull and the push
# prefetch index entries (stage 1: 2 sites each) with prefetcht0 and records (stage 2: 2
# lines, 2 sites) into L2 with prefetcht1 (common/prefetch.h says why), digest() and
# the checkpoint copy a record's 2 lines with prefetcht0. main before the fix had 4, 4, 0,
# 0 prefetcht0; before the records went to L2 (2026-12-06) it had no prefetcht1.
# x86-64 only (PrefetchLine is an asm there); exits 77 (skipped) elsewhere, and without
# objdump (under CI=true that fails instead).
set -euo pipefail
bin=$1
[ "$(uname -m)" = x86_64 ] || { echo "not x86-64: skipped"; exit 77; }
if ! command -v objdump > /dev/null; then
  echo "objdump (Debian package binutils) is missing"
  [ "${CI:-}" = true ] && exit 1  # a skip would leave CI silently green
  exit 77
fi
dis=$(mktemp)
trap 'rm -f "$dis"' EXIT
objdump -d --no-show-raw-insn "$bin" ${2:+"$2"} > "$dis"
count() {  # mangled-name fragment, instruction: how many in the functions whose symbol has it
  awk -v f="$1" -v ins="$2" '/^[0-9a-f]+ <.*>:$/ {on = index($0, f) > 0} on && $0 ~ ins {n++} END {print n + 0}' "$dis"
}
fail=0
check() {  # name fragment, instruction, at least
  local n
  n=$(count "$1" "$2")
  if [ "$n" -lt "$3" ]; then
    echo "FAIL: $1 has $n $2, expected at least $3"
    fail=1
  else
    echo "ok: $1 has $n $2 (at least $3)"
  fi
}
check 10ShardStore10ReadSparse prefetcht0 4
check 10ShardStore10ReadSparse prefetcht1 4
check 10ShardStore9ApplyRows prefetcht0 4  # ApplySparseRows and ApplySparseRowsReadOnly
check 10ShardStore9ApplyRows prefetcht1 8  # the lookup's and the kept slots' records
check 8RowTable6digest prefetcht0 2
check 10ShardStore17SnapshotDirtyInto prefetcht0 2
# A row kRowsAhead ahead, per optimizer kind (5 loops; none before 2026-12-06).
[ -z "${2:-}" ] || check 3cpu13OptimizerRows prefetcht0 5
exit $fail
