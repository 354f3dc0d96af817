# shellcheck shell=bash
# Helpers for the multi-node Tessera job tests (sourced after lib.sh): reading a job's
# summary line and checking its logs. tj_ = Tessera job.

# tj_field LOG KEY: a field of the last "summary: {...}" line ("" when missing).
tj_field() {
  grep -o 'summary: {.*}' "$1" 2>/dev/null | tail -1 | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'
}

# tj_expect LOG REGEX WHAT: fail (with the log's tail) unless a line matches.
tj_expect() {
  grep -Eq -- "$2" "$1" && return 0
  tail -n 25 "$1" >&2
  mn_fail "$3: no line matches /$2/ in $1"
}

# tj_expect_min LOG FIELD MIN WHAT: the summary's FIELD is at least MIN.
tj_expect_min() {
  local v
  v="$(tj_field "$1" "$2")"
  [ -n "$v" ] || { tail -n 25 "$1" >&2; mn_fail "$4: no $2 in the summary"; }
  awk -v v="$v" -v m="$3" 'BEGIN{exit !(v >= m)}' || mn_fail "$4: $2 $v < $3"
}

# tj_forward_env: mpirun -x options for the environment that must be the same on every
# node: OpenBLAS's kernel choice (set on some machines) decides the float results.
tj_forward_env() {
  local v
  for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS; do
    [ -n "${!v:-}" ] && printf -- '-x %s ' "$v"
  done
  return 0
}

# tj_bare NODE RANK WORLD LOG ARGS...: starts one `tessera train` process on NODE with
# the TESSERA_* rank variables and no supervising launcher (what processes under a lost
# srun look like), in the background; its pid goes to the caller's $! .
tj_bare() {
  local node="$1" rank="$2" world="$3" log="$4"
  shift 4
  TESSERA_RANK="$rank" TESSERA_WORLD_SIZE="$world" TESSERA_COORDINATOR_HOST=tn1 \
    TESSERA_COORDINATOR_PORT="$TJ_PORT" TESSERA_JOB_ID="${TJ_JOB_ID:-4711}" \
    mn_exec "$node" "$@" > "$log" 2>&1 &
}
