// Which run of a job this process belongs to: the Slurm job id and requeue count, and
// the restart count of `tessera launch --max_restarts`. It goes into every log line's
// prefix and into checkpoint metadata, so logs and checkpoints of a job that was
// preempted, requeued and resumed can be told apart and matched up.
//
// Set once by launch/job.cc (RunJobProcess) from the detected launcher environment,
// before any other thread starts; read from any thread afterwards.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tessera {

struct RunIdentity {
  std::string slurm_job_id;       // SLURM_JOB_ID; "" outside Slurm
  int slurm_restart_count = 0;    // SLURM_RESTART_COUNT: how often Slurm requeued the job
  int restart_count = 0;          // TESSERA_RESTART_COUNT: restarts by `tessera launch`
  std::string launch_source;      // "openmpi", "slurm", "tessera-launch", ... (launch/env.h)

  // Log prefix part: "slurm 4242 requeue 1", "restart 2", "" for a plain first run.
  std::string LogSuffix() const;
  // Key/value pairs for checkpoint metadata (always the same four keys).
  std::vector<std::pair<std::string, std::string>> Metadata() const;
};

// The identity set by SetRunIdentity (a default-constructed one before).
const RunIdentity& CurrentRunIdentity();
// Call once at start-up, single-threaded.
void SetRunIdentity(const RunIdentity& id);

}  // namespace tessera
