#include "launch/job_shape.h"

#include <algorithm>
#include <string>

namespace tessera::launch {

Result<JobShape> ResolveJobShape(int world_size, int servers_flag, int workers_flag) {
  if (servers_flag < 0 || workers_flag < 0) return Status::InvalidArgument("--servers and --workers must be >= 0");
  if (world_size <= 1) {
    return Status::InvalidArgument(
        "this process is alone (world size 1): start the job with `tessera launch --servers S --workers W`, "
        "mpirun or srun");
  }
  JobShape s{servers_flag, workers_flag};
  if (s.servers == 0) s.servers = std::max(1, (world_size - 1) / 2);
  if (s.workers == 0) s.workers = world_size - 1 - s.servers;
  if (1 + s.servers + s.workers != world_size) {
    return Status::InvalidArgument("the launcher started " + std::to_string(world_size) + " processes, but 1 coordinator + " +
                                   std::to_string(s.servers) + " servers + " + std::to_string(s.workers) + " workers need " +
                                   std::to_string(1 + s.servers + s.workers));
  }
  if (s.servers < 1 || s.workers < 1) return Status::InvalidArgument("a job needs at least 1 server and 1 worker");
  return s;
}

Result<int> ResolveServerThreads(int flag, const JobShape& shape, bool spans_hosts, int cores) {
  if (flag < 0 || flag > 2) {
    return Status::InvalidArgument("--server_threads " + std::to_string(flag) + ": 1 or 2 (or 0: auto)");
  }
  if (flag != 0) return flag;
  return !spans_hosts && shape.servers + shape.workers <= cores ? 2 : 1;
}

}  // namespace tessera::launch
