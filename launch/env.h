// Where this process sits in a job: rank, world size, local rank, coordinator address.
//
// DetectLaunchEnv is the ONLY code in Tessera that reads launcher environment
// variables, and it is a pure function of an env map so it can be tested on recorded
// environments. Precedence when several launchers' variables are present (mpirun
// inside a Slurm allocation sets both): explicit flags > tessera launch (TESSERA_*) >
// Open MPI (OMPI_COMM_WORLD_*, PMIx) > MPICH/Hydra (PMI_*) > Slurm (SLURM_*) >
// torchrun (RANK/WORLD_SIZE) > single process. The innermost launcher wins: mpirun
// inside an allocation numbers its own processes, Slurm's SLURM_PROCID belongs to the
// step that started mpirun. The source and the variables used are reported in
// LaunchInfo::detail so RunJobProcess can log them.
//
// Coordinator address: TESSERA_COORDINATOR_HOST > MASTER_ADDR > first host of the
// step's node list (SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST) > 127.0.0.1. Port:
// TESSERA_COORDINATOR_PORT > MASTER_PORT > derived from SLURM_JOB_ID and SLURM_STEP_ID >
// derived from Open MPI's job id (OMPI_MCA_ess_base_jobid, else PMIX_NAMESPACE) > none.
// A derived port depends only on the job step, so every rank computes the same one, and
// two jobs on one node, or two steps of one allocation, get different ports. Under
// mpirun with no explicit host, RunJobProcess does not use these: rank 0 publishes its
// bound endpoint through MPI (launch/rendezvous.h).
//
// Whether the job spans hosts (LaunchInfo::spans_hosts) comes from the launcher's
// per-node counts: OMPI_COMM_WORLD_LOCAL_SIZE < OMPI_COMM_WORLD_SIZE, MPI_LOCALNRANKS <
// PMI_SIZE, SLURM_STEP_NUM_NODES (else SLURM_NNODES) > 1, LOCAL_WORLD_SIZE < WORLD_SIZE;
// and from a coordinator host that is not loopback.
// `tessera launch --sync=allreduce` starts its workers as one mpirun with
// TESSERA_RANK_BASE instead of TESSERA_RANK: rank = TESSERA_RANK_BASE + the MPI rank.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/run_identity.h"
#include "common/status.h"

namespace tessera::launch {

using EnvMap = std::map<std::string, std::string>;

struct LaunchInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string coordinator_host = "127.0.0.1";
  int coordinator_port = 0;        // 0: not known from the environment
  // Rank 0 under tessera launch: the launcher's socket bound to coordinator_port and
  // listening, inherited as this fd (TESSERA_COORDINATOR_FD); -1: none, bind the port.
  int coordinator_listen_fd = -1;
  std::string source = "single";   // "tessera-launch", "openmpi", "mpich", "slurm", "torchrun", "single"
  std::string slurm_job_id;        // "" outside Slurm
  int slurm_restart_count = 0;
  int restart_count = 0;           // TESSERA_RESTART_COUNT (tessera launch --max_restarts)
  uint64_t job_id = 0;             // TESSERA_JOB_ID, else derived from the Slurm/MPI job id, else 0
  std::string detail;              // which variables gave rank, host and port (for the log)
  // The coordinator host came from TESSERA_COORDINATOR_HOST or MASTER_ADDR (the user or
  // the launcher named it), not from a node list or the default.
  bool coordinator_host_explicit = false;
  std::string coordinator_host_from = "default 127.0.0.1";  // which variable gave it, for errors
  // Some of the job's processes run on other hosts; spans_from says which variables told.
  bool spans_hosts = false;
  std::string spans_from = "no launcher variable says so";
  // The MPI world this process belongs to (Open MPI's OMPI_COMM_WORLD_* or MPICH's PMI_*,
  // whatever the source above): 0 when not started by an MPI launcher. The all-reduce
  // path (docs/collective.md) calls MPI_Init only when this is > 0.
  int mpi_world_size = 0;
  int mpi_rank = -1;
  // MPICH's Hydra (and other PMI-1 launchers): the PMI_FD descriptor; -1 without.
  int pmi_fd = -1;
  // CUDA_VISIBLE_DEVICES as the launcher (or Slurm's --gpus-per-task) set it; unset when
  // the variable is absent. The CUDA driver applies it; launch/device_placement.h reads it
  // to explain a choice ("" hides every GPU).
  bool cuda_visible_devices_set = false;
  std::string cuda_visible_devices;
};

// Reads the process environment into an EnvMap (for main()).
EnvMap CurrentEnv();

// Pure: derives LaunchInfo from `env`. Errors name the variable and its bad value.
Result<LaunchInfo> DetectLaunchEnv(const EnvMap& env);

// Expands a Slurm node list ("node[01-04,07],gpu5" -> node01 node02 node03 node04
// node07 gpu5; "r[1-2]n[1-2]" -> r1n1 r1n2 r2n1 r2n2), keeping zero padding, in-process
// (scontrol is missing in many containers). Errors name the list; more than
// `max_hosts` hosts is an error rather than an unbounded allocation.
Result<std::vector<std::string>> ExpandSlurmNodeList(const std::string& nodelist, size_t max_hosts = 1 << 16);

// The first host of a Slurm node list (without expanding the rest).
Result<std::string> FirstSlurmHost(const std::string& nodelist);

// The GPU a process uses: its local rank modulo the devices it can see, so the ranks
// on one node spread over its GPUs (and a task that Slurm gave exactly one GPU through
// CUDA_VISIBLE_DEVICES uses device 0). -1 when there is no device.
int DeviceForLocalRank(int local_rank, int device_count);

// The run identity (Slurm job id, requeue and restart counts) of a detected launch.
RunIdentity RunIdentityOf(const LaunchInfo& li);

}  // namespace tessera::launch
