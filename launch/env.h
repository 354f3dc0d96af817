// Where this process sits in a job: rank, world size, local rank, coordinator address.
//
// DetectLaunchEnv is the ONLY code in Tessera that reads launcher environment
// variables, and it is a pure function of an env map so it can be tested on recorded
// environments. Precedence when several launchers' variables are present (mpirun
// inside a Slurm allocation sets both): explicit flags > tessera launch (TESSERA_*) >
// Open MPI (OMPI_COMM_WORLD_*) > MPICH/Hydra (PMI_*) > Slurm (SLURM_*) >
// torchrun (RANK/WORLD_SIZE) > single process. The source used is reported so it can
// be logged. `tessera launch --sync=allreduce` starts its workers as one mpirun with
// TESSERA_RANK_BASE instead of TESSERA_RANK: rank = TESSERA_RANK_BASE + the MPI rank.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace tessera::launch {

using EnvMap = std::map<std::string, std::string>;

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string coordinator_host = "127.0.0.1";
  int coordinator_port = 0;        // 0: not known from the environment
  std::string source = "single";   // "tessera-launch", "openmpi", "mpich", "slurm", "torchrun", "single"
  std::string slurm_job_id;        // "" outside Slurm
  int slurm_restart_count = 0;
  uint64_t job_id = 0;             // TESSERA_JOB_ID, else derived from the Slurm job id, else 0
  // The MPI world this process belongs to (Open MPI's OMPI_COMM_WORLD_* or MPICH's PMI_*,
  // whatever the source above): 0 when not started by an MPI launcher. The all-reduce
  // path (docs/collective.md) calls MPI_Init only when this is > 0.
  int mpi_world_size = 0;
  int mpi_rank = -1;
};

// Reads the process environment into an EnvMap (for main()).
EnvMap CurrentEnv();

// Pure: derives LaunchInfo from `env`. Errors name the variable and its bad value.
Result<LaunchInfo> DetectLaunchEnv(const EnvMap& env);

// Expands a Slurm node list ("node[01-04,07],gpu5") and returns the first host name.
Result<std::string> FirstSlurmHost(const std::string& nodelist);

}  // namespace tessera::launch
