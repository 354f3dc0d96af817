// The steps of DetectLaunchEnv (launch/env.h), each a pure function of the environment
// map that fills its part of a LaunchInfo. DetectLaunchEnv runs them in this order; they
// are declared here so each can be tested alone (tests/launch/env_detect_test.cc).
// Errors are InvalidArgument naming the variable.
#pragma once

#include <string>

#include "common/status.h"
#include "launch/env.h"

namespace tessera::launch::detect {

// The MPI world the process belongs to, if any: mpi_world_size, mpi_rank and (MPICH)
// pmi_fd, from OMPI_COMM_WORLD_* or PMI_*.
Status MpiWorld(const EnvMap& env, LaunchInfo* li);

// source, rank, world_size and local_rank from the first launcher whose variables are
// set (tessera launch, Open MPI, MPICH, Slurm, torchrun; none: a single process), then
// checks that the rank lies inside the world. REQUIRES: MpiWorld ran.
Status Rank(const EnvMap& env, LaunchInfo* li);

// PMIx's rank, when Open MPI or Slurm set one, must be the rank Rank found.
Status PmixRankAgrees(const EnvMap& env, const LaunchInfo& li);

// Which variables gave the rank ("TESSERA_RANK/TESSERA_WORLD_SIZE", ...) for li.source.
const std::string& RankVariables(const std::string& source);

// coordinator_host (and whether it was given explicitly); a non-loopback explicit host
// means the job spans hosts. Returns where the host came from, for li.detail.
// REQUIRES: Rank ran.
Result<std::string> CoordinatorHost(const EnvMap& env, LaunchInfo* li);

// coordinator_port, given or derived from the launcher's job id (0: none). Returns where
// it came from, for li.detail. REQUIRES: Rank ran.
Result<std::string> CoordinatorPort(const EnvMap& env, LaunchInfo* li);

// job_id: TESSERA_JOB_ID, else derived from Slurm's or Open MPI's job id (0: none).
Status JobId(const EnvMap& env, LaunchInfo* li);

}  // namespace tessera::launch::detect
