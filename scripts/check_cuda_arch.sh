#!/usr/bin/env bash
# Checks that a CUDA build carries GPU code for every architecture its CMake configuration
# names, in the kernels library and in the linked `tessera` binary (what actually runs).
#   scripts/check_cuda_arch.sh BUILD_DIR
# CMAKE_CUDA_ARCHITECTURES entries (CMake's meaning): "90" wants SASS sm_90 and PTX
# compute_90, "90-real" SASS only, "90-virtual" PTX only. The configuration writes them to
# BUILD_DIR/tessera_cuda.txt (cmake/TesseraCuda.cmake). A CPU-only build has nothing to
# check and passes, saying so. Exit 1 names what is missing; exit 2 on a usage or tool error.
# Reads the fatbins with cuobjdump when the toolkit has one, else with
# kernels/tools/fatbin_archs.py (the CUDA 13 toolkit here ships no cuobjdump).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:?usage: check_cuda_arch.sh BUILD_DIR}
CONFIG="$BUILD/tessera_cuda.txt"
[ -f "$CONFIG" ] || { echo "check_cuda_arch: $CONFIG is missing (configure $BUILD first)" >&2; exit 2; }
HAVE=$(sed -n 's/^TESSERA_HAVE_CUDA=//p' "$CONFIG")
ARCHS=$(sed -n 's/^CMAKE_CUDA_ARCHITECTURES=//p' "$CONFIG" | tr ';' ' ')
if [ "$HAVE" != ON ]; then
  echo "check_cuda_arch: $BUILD is a CPU-only build (TESSERA_HAVE_CUDA=$HAVE): no GPU code to check"
  exit 0
fi
[ -n "$ARCHS" ] || { echo "check_cuda_arch: $CONFIG names no CUDA architectures" >&2; exit 2; }

FILES=("$BUILD/kernels/libtessera_kernels.a" "$BUILD/launch/tessera")
for f in "${FILES[@]}"; do
  [ -f "$f" ] || { echo "check_cuda_arch: $f is missing (build $BUILD first)" >&2; exit 2; }
done

# Prints "KIND sm_XX" (KIND: sass or ptx) once per embedded entry of file $1.
list_entries() {
  local cuobjdump
  cuobjdump=$(command -v cuobjdump || true)
  [ -n "$cuobjdump" ] || [ ! -x /usr/local/cuda/bin/cuobjdump ] || cuobjdump=/usr/local/cuda/bin/cuobjdump
  if [ -n "$cuobjdump" ]; then
    # "ELF file    1: tessera.1.sm_90.cubin" / "PTX file    1: tessera.1.sm_90.ptx"
    { "$cuobjdump" --list-elf "$1" || true; } | grep -o 'sm_[0-9]*[af]\?\.cubin' | sed 's/^/sass /; s/\.cubin$//'
    { "$cuobjdump" --list-ptx "$1" || true; } | grep -o 'sm_[0-9]*[af]\?\.ptx' | sed 's/^/ptx /; s/\.ptx$//'
  else
    python3 "$ROOT/kernels/tools/fatbin_archs.py" "$1" | awk -F'\t' '{print $2, $3}'
  fi
}

missing=()
for f in "${FILES[@]}"; do
  entries=$(list_entries "$f" | sort -u)
  for arch in $ARCHS; do
    num=${arch%%-*}
    [[ "$num" =~ ^[0-9]+[af]?$ ]] || { echo "check_cuda_arch: cannot check architecture '$arch'" >&2; exit 2; }
    case "$arch" in
      *-virtual) want=(ptx) ;;
      *-real) want=(sass) ;;
      *) want=(sass ptx) ;;
    esac
    for kind in "${want[@]}"; do
      grep -qx "$kind sm_$num" <<<"$entries" || missing+=("$f: no ${kind^^} for sm_$num")
    done
  done
  echo "check_cuda_arch: $f has: $(tr '\n' ' ' <<<"$entries")"
done
if ((${#missing[@]})); then
  printf 'check_cuda_arch: %s\n' "${missing[@]}" >&2
  echo "check_cuda_arch: CMAKE_CUDA_ARCHITECTURES=$ARCHS" >&2
  exit 1
fi
echo "check_cuda_arch: every configured architecture ($ARCHS) is present"
