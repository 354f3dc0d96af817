#!/usr/bin/env bash
# Installs every Debian package Tessera needs that is missing, and nothing else.
# Idempotent: when everything is present it runs no apt command at all.
# Usage: scripts/setup.sh [--with-slurm] [--with-torch]
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ccache
  libopenmpi-dev openmpi-bin
  libzmq3-dev cppzmq-dev
  libssl-dev
  capnproto libcapnp-dev
  librocksdb-dev
  libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev zlib1g-dev
  nlohmann-json3-dev
  clang libclang-rt-14-dev
  python3 python3-dev pybind11-dev python3-numpy python3-torch
  iproute2 iptables faketime fiu-utils
  mpich
)
for arg in "$@"; do
  case "$arg" in
    --with-slurm) PKGS+=(slurm-wlm slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge) ;;
    --with-torch) PKGS+=(python3-torch libopenblas0-pthread) ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup.sh: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup.sh: installing ${#missing[@]} missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
