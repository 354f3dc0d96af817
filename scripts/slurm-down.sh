#!/usr/bin/env bash
# Stops the cluster scripts/slurm-up.sh started: cancels its jobs, then stops slurmd,
# slurmctld and munged by the pids in their pid files (TERM, then KILL after 10 s).
# Usage: scripts/slurm-down.sh [--purge]     (--purge also deletes $BASE)
# Environment: TESSERA_SLURM_BASE (default /tmp/tessera-slurm)
set -uo pipefail
BASE="${TESSERA_SLURM_BASE:-/tmp/tessera-slurm}"
export SLURM_CONF="$BASE/etc/slurm.conf"
if [ -f "$SLURM_CONF" ] && [ -s "$BASE/run/slurmctld.pid" ] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 20); do [ -z "$(timeout 10 squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
fi
stop() {  # pid-file daemon-name
  [ -s "$1" ] || { rm -f "$1"; return 0; }
  local pid
  pid="$(cat "$1")"
  # Only our daemon: a pid file left by a crashed cluster may name a recycled pid.
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || { rm -f "$1"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$1"
}
for f in "$BASE"/run/slurmd.*.pid; do [ -e "$f" ] && stop "$f" slurmd; done
stop "$BASE/run/slurmctld.pid" slurmctld
stop "$BASE/run/munged.pid" munged
[ "${1:-}" = "--purge" ] && rm -rf "$BASE"
echo "slurm-down: stopped the cluster under $BASE"
