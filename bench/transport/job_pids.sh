# shellcheck shell=bash
# Sourced by the bench/transport scripts that watch a running `tessera launch --servers 1
# --workers 1` job: job_pids LAUNCHER_PID fills the associative array `pid` with the
# launcher's children by rank (0 the coordinator, 1 the server, 2 the worker), waiting up
# to 5 s for them; it fails when they did not all appear.
job_pids() {
  declare -gA pid=()
  local i p r
  for ((i = 0; i < 50 && ${#pid[@]} < 3; i++)); do
    sleep 0.1
    for p in $(pgrep -P "$1"); do
      r=$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | sed -n 's/^TESSERA_RANK=//p')
      [ -n "$r" ] && pid[$r]=$p
    done
  done
  [ ${#pid[@]} -ge 3 ]
}
