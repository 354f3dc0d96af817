#!/usr/bin/env bash
# Installs what is missing, builds Tessera and runs the whole test suite.
# This is the README's test command; .ci/run calls exactly this.
#   scripts/test.sh            full suite: CUDA-enabled build (when nvcc exists), CPU-only build,
#                              ASan+UBSan and TSan passes, fuzzing for $TESSERA_FUZZ_SECONDS per target (default 30, 5 targets)
# Environment: TESSERA_JOBS (build parallelism, default: nproc)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
JOBS=${TESSERA_JOBS:-$(nproc)}
FUZZ_SECONDS=${TESSERA_FUZZ_SECONDS:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

step() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }

# ctest counts a skipped test as passed. Under CI (CI=true, as .ci/run is run) a skipped
# or not-run test that is not gpu-labelled fails the run: a missing tool must not leave
# CI silently green (GPU tests skip where there is no GPU, by design). Elsewhere a skip
# stays a skip. Usage: run_ctest BUILD_DIR [ctest arguments...]
run_ctest() {
  local dir=$1 log
  shift
  log=$(mktemp)
  ctest --test-dir "$dir" "$@" 2>&1 | tee "$log"
  if [ "${CI:-}" = true ]; then
    bash scripts/ctest_no_skips.sh "$dir" "$log" || { rm -f "$log"; exit 1; }
  fi
  rm -f "$log"
}

step "set-up"
bash scripts/setup.sh
# The slurm-labelled tests (the batch template on a private one-node Slurm) run once, with
# the first build's tests; TESSERA_SLURM_TESTS=0 leaves them out. The cluster is stopped
# and its directory removed however this script ends.
SKIP_LABELS="slurm"
if [ "${TESSERA_SLURM_TESTS:-1}" = 1 ]; then
  bash scripts/setup.sh --with-slurm
  trap 'bash scripts/slurm-down.sh --purge' EXIT
  if ! bash scripts/slurm-up.sh; then
    echo "ERROR: the private Slurm for the slurm-labelled tests did not start (scripts/slurm-up.sh printed why" \
         "and the tail of its logs above). Fix that, or leave those tests out with TESSERA_SLURM_TESTS=0." >&2
    exit 1
  fi
  SKIP_LABELS="none"
fi

# Compile flags for CI's builds. Full debug info (-g) costs about a third of the compile
# time on 2 cores; -g1 keeps the line tables that stack traces and sanitizer reports need.
# The sanitizer builds use -O1, which halves their compile time (measured on
# coordinator/checkpoint_driver.cc with ASan+UBSan: 144 s at -O2 -g, 77 s at -O1 -g1).
CI_FLAGS="-O2 -g1 -DNDEBUG"
SAN_FLAGS="-O1 -g1 -DNDEBUG"

# ccache lets the CPU-only build (2) reuse build 1's objects: only the few files that see
# TESSERA_HAVE_CUDA preprocess differently. BASEDIR and NOHASHDIR make the two build
# trees' paths hash alike; the cache lives in build-ccache/ so a run starts from what this
# checkout built before, never from another project's cache.
LAUNCHER=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR="$ROOT/build-ccache" CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE=4G
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  ccache --zero-stats >/dev/null
fi

# 1. The default build: CUDA backend when nvcc is present (sm_80, sm_90), warnings as errors.
#    It runs the whole suite, the multi-process (integration) tests included.
step "configure + build (TESSERA_CUDA=AUTO)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_WERROR=ON "${LAUNCHER[@]}" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$CI_FLAGS" >/dev/null
cmake --build build -j"$JOBS"
# The kernels (library and the linked binary) carry SASS/PTX for every configured
# architecture; a CPU-only build passes with a note.
bash scripts/check_cuda_arch.sh build
step "tests (CUDA-enabled build; gpu-labelled tests skip without a GPU)"
run_ctest build --output-on-failure -j2 --timeout 600 -LE "$SKIP_LABELS"

# 2. The CPU-only build must configure, build and pass on its own. Its unit tests all run;
#    of the multi-process tests, which run the same CPU code paths as in build 1 (no GPU
#    there either), one training job per sync family proves its binaries work end to end.
step "configure + build + test (TESSERA_CUDA=OFF)"
cmake -S . -B build-cpu -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_CUDA=OFF \
  -DTESSERA_WERROR=ON -DTESSERA_BUILD_BENCH=OFF "${LAUNCHER[@]}" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$CI_FLAGS" >/dev/null
cmake --build build-cpu -j"$JOBS"
if ((${#LAUNCHER[@]})); then ccache --show-stats | grep -Ei 'hit|miss' || true; fi
run_ctest build-cpu --output-on-failure -j2 --timeout 600 -L unit -LE gpu
run_ctest build-cpu --output-on-failure -j2 --timeout 600 \
  -R '^(Sync/TrainReachesAccuracy[.]InEachSyncMode/bsp|AllReduceTrain[.]FusedAndPerTensorGiveTheSameParameters|CheckpointJob[.]ResumeAfterSigkillIsBitwiseExactAndReshards)( |$)'

# 3. AddressSanitizer + UndefinedBehaviorSanitizer over the code with threads and shared
#    buffer ownership: the wire layer, the launcher, whole multi-process PS jobs, and the
#    launch rendezvous (MPI's world exchange on the communication thread, PMI-1 under
#    MPICH's mpiexec).
step "ASan+UBSan build + wire, launcher and parameter-server tests"
SAN_TARGETS="leader_job_test request_alloc_test reply_backlog_test push_lifetime_test dead_coordinator_test mean_fold_job_test rendezvous_job_test net_iface_test membership_test child_command_test wire_unit_test wire_integration_test wire_mac_auth_test wire_shm_test wire_shm_process_test shm_peer wire_link_test wire_link_process_test link_peer shm_stream_job_test shm_large_push_pull_test tcp_pipeline_test sparse_groups_reuse_test sparse_push_in_place_test row_table_test key_groups_test wire_peer local_launcher_test ps_job_test ps_refusal_test ps_auth_test request_decode_test manifest_hostile_test idx_hostile_test ps_peer kv_app_test kv_app tessera checkpoint_store_test checkpoint_ps_test replica_state_test"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_CUDA=OFF \
  -DTESSERA_BUILD_BENCH=OFF -DTESSERA_SANITIZE=address,undefined -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined" >/dev/null
# shellcheck disable=SC2086
cmake --build build-asan -j"$JOBS" --target $SAN_TARGETS
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_ctest build-asan --output-on-failure -j2 --timeout 600 \
  -R '^(LeaderJob|RequestAllocs|ReactorLead|ReactorLeadLink|ReplyBacklog|PushLifetime|DeadCoordinator|MpiRendezvous|PmiRendezvous|ChooseInterface|PlanAddresses|PlanNetwork|FollowCoordinatorRoute|ProbeTcp|DefaultCandidateAddresses|FirstReachableEndpoint|JobRecord|JobShape|SilentTest|ChildCommand|Codec|OutMessage|MessageState|Reply|Op|Alloc|SocketTest|ZeroCopyTest|Reactor|ReactorWakeup|MalformedInput|Process|LocalLauncher|ParamServerJob|RefusalTest|CurveKeyFile|JobAuth|CurveJobTest|MacJobTest|MacAuthTest|MitmTest|ShmArena|ShmSocket|ShmProcess|ShmStream|ShmStreamSocket|ShmStreamJob|ShmLargePushPull|StreamCopy|EverySync/MeanFoldJob|TcpPipeline|SparseGroupsReuse|SparsePushInPlace|LinkTest|Auth/LinkBitwise|LinkProcess|RowTable|ShardStoreRows|SplitWork|ShardStoreSplit|TableEviction|KeyGroups|LaunchedJobAuth|RequestDecode|ManifestHostile|IdxHostile|KvApp|Crc32c|Record|Methods/ShardDb|Manifest|Catalog|PsCheckpoint|ReplicaState)[.]'

# 4. ThreadSanitizer over the code with the most threads: in-process jobs (coordinator,
#    servers, worker and ZAP handler threads in one process; the coordinator's rendezvous
#    table) and whole multi-process jobs (with the coordinator's /metrics HTTP thread and
#    the timeline's flusher thread). libzmq is not instrumented (tests/wire/tsan.supp says why).
step "TSan build + multi-threaded and multi-process tests"
TSAN_TARGETS="leader_job_test request_alloc_test row_table_test reply_backlog_test dead_coordinator_test wire_integration_test mean_fold_job_test wire_shm_test wire_link_test wire_link_process_test link_peer shm_stream_job_test shm_large_push_pull_test tcp_pipeline_test sparse_groups_reuse_test sparse_push_in_place_test handle_test wire_peer ps_refusal_test ps_auth_test ps_job_test ps_peer tessera rendezvous_test observe_job_test timeline_job_test"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_CUDA=OFF \
  -DTESSERA_BUILD_BENCH=OFF -DTESSERA_SANITIZE=thread -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$SAN_FLAGS" >/dev/null
# shellcheck disable=SC2086
cmake --build build-tsan -j"$JOBS" --target $TSAN_TARGETS
TSAN_OPTIONS="suppressions=$ROOT/tests/wire/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
  run_ctest build-tsan --output-on-failure -j2 --timeout 600 \
  -R '^((LeaderJob|ReplyBacklog|DeadCoordinator|ReactorLead|ReactorLeadLink|SocketTest|ZeroCopyTest|MessageState|Reactor|ReactorWakeup|LinkTest|Auth/LinkBitwise|LinkProcess|ShmStream|ShmStreamSocket|ShmStreamJob|ShmLargePushPull|EverySync/MeanFoldJob|TcpPipeline|SparseGroupsReuse|SparsePushInPlace|HandleDefer|RefusalTest|CurveKeyFile|JobAuth|CurveJobTest|MacJobTest|LaunchedJobAuth|ParamServerJob|RendezvousJob|RendezvousStore|ObserveJob|SplitWork|ShardStoreSplit)[.]|TimelineJob[.]Bsp)'

# 5. Fuzz the decoders for a bounded time each (clang + libFuzzer, ASan + UBSan).
if [ -f scripts/fuzz.sh ] && [ "$FUZZ_SECONDS" -gt 0 ]; then
  step "fuzzing the header, payload, manifest and data decoders and the auth=mac framing for ${FUZZ_SECONDS}s each"
  bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi
step "all tests passed"
