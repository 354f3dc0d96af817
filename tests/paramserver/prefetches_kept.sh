#!/usr/bin/env bash
# prefetches_kept.sh BINARY: the row store's prefetches are in the machine code.
# GCC 12 at -O2 deleted every record prefetch of RowTable (a function whose only effect is
# __builtin_prefetch was dropped at its call sites), silently: results stay right, only
# each pulled key waits for its record (docs/benchmarks-sparse-latency.md, "The prefetches
# the compiler deleted"). This counts prefetcht0 instructions per function in BINARY (an
# executable or a static library) against what the source issues: the pull and the push
# prefetch index entries (stage 1: 2 sites each) and records (stage 2: 2 lines, 2 sites),
# digest() and the checkpoint copy a record's 2 lines. main before the fix had 4, 4, 0, 0.
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
objdump -d --no-show-raw-insn "$bin" > "$dis"
count() {  # mangled-name fragment: prefetcht0 instructions in the functions whose symbol has it
  awk -v f="$1" '/^[0-9a-f]+ <.*>:$/ {on = index($0, f) > 0} on && /prefetcht0/ {n++} END {print n + 0}' "$dis"
}
fail=0
check() {  # name fragment, at least
  local n
  n=$(count "$1")
  if [ "$n" -lt "$2" ]; then
    echo "FAIL: $1 has $n prefetcht0, expected at least $2"
    fail=1
  else
    echo "ok: $1 has $n prefetcht0 (at least $2)"
  fi
}
check 10ShardStore10ReadSparse 8
check 10ShardStore9ApplyRows 8  # ApplySparseRows and ApplySparseRowsReadOnly
check 8RowTable6digest 2
check 10ShardStore17SnapshotDirtyInto 2
exit $fail
