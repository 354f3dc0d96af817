#!/usr/bin/env bash
# Fails when a ctest run skipped a test that is not gpu-labelled.
#   scripts/ctest_no_skips.sh BUILD_DIR CTEST_OUTPUT_LOG
# ctest lists what it did not run after "The following tests did not run:", one line each:
# "  42 - Suite.Name (Skipped)" (a gtest GTEST_SKIP, through gtest_discover_tests' skip
# pattern), "(Disabled)" or "(Not Run)". GPU-labelled tests (ctest -L gpu) may skip: they
# skip wherever there is no GPU. Anything else skipping under CI means a missing tool or
# a test that does not apply to this build, and either must be fixed, not passed over.
# scripts/test.sh calls this after each ctest run when CI=true.
set -euo pipefail
dir=${1:?usage: ctest_no_skips.sh BUILD_DIR LOG}
log=${2:?usage: ctest_no_skips.sh BUILD_DIR LOG}
gpu=$(ctest --test-dir "$dir" -N -L gpu | sed -n 's/^ *Test *#[0-9]*: //p')
bad=()
while IFS= read -r name; do
  grep -qxF "$name" <<<"$gpu" || bad+=("$name")
done < <(sed -n '/^The following tests did not run:/,/^$/p' "$log" |
         sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (\(Skipped\|Disabled\|Not Run\))$/\1/p')
if ((${#bad[@]})); then
  echo "ERROR: under CI these tests did not run (not gpu-labelled; their output above says why," \
       "e.g. which tool and package are missing):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
