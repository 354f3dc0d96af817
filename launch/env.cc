#include "launch/env.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/hash.h"

extern char** environ;

namespace tessera::launch {

namespace {

const std::string* Find(const EnvMap& env, const char* name) {
  auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

Result<int> ParseInt(const EnvMap& env, const char* name, int fallback, bool required) {
  const std::string* v = Find(env, name);
  if (v == nullptr) {
    if (required) return Status::InvalidArgument(std::string(name) + " is not set");
    return fallback;
  }
  errno = 0;
  char* end = nullptr;
  long x = std::strtol(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < 0 || x > 1 << 24) {
    return Status::InvalidArgument(std::string(name) + "='" + *v + "' is not a valid count");
  }
  return static_cast<int>(x);
}

Status Check(const LaunchInfo& li) {
  if (li.world_size < 1 || li.rank >= li.world_size) {
    return Status::InvalidArgument("rank " + std::to_string(li.rank) + " is outside world size " +
                                   std::to_string(li.world_size) + " (from " + li.source + ")");
  }
  return Status::OK();
}

}  // namespace

EnvMap CurrentEnv() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

Result<std::string> FirstSlurmHost(const std::string& nodelist) {
  if (nodelist.empty()) return Status::InvalidArgument("empty SLURM_JOB_NODELIST");
  // The first host is everything before the first top-level comma, with its bracket
  // expression (if any) replaced by the first number of its first range.
  size_t depth = 0, i = 0;
  for (; i < nodelist.size(); ++i) {
    char c = nodelist[i];
    if (c == '[') ++depth;
    if (c == ']') {
      if (depth == 0) return Status::InvalidArgument("unbalanced ']' in node list '" + nodelist + "'");
      --depth;
    }
    if (c == ',' && depth == 0) break;
  }
  if (depth != 0) return Status::InvalidArgument("unbalanced '[' in node list '" + nodelist + "'");
  std::string first = nodelist.substr(0, i);
  auto lb = first.find('[');
  if (lb == std::string::npos) return first;
  auto rb = first.find(']', lb);
  std::string inner = first.substr(lb + 1, rb - lb - 1);
  std::string head = inner.substr(0, inner.find_first_of(",-"));
  if (head.empty()) return Status::InvalidArgument("bad range in node list '" + nodelist + "'");
  for (char c : head) {
    if (c < '0' || c > '9') return Status::InvalidArgument("bad range in node list '" + nodelist + "'");
  }
  return first.substr(0, lb) + head + first.substr(rb + 1);
}

Result<LaunchInfo> DetectLaunchEnv(const EnvMap& env) {
  LaunchInfo li;
  if (const std::string* j = Find(env, "SLURM_JOB_ID")) li.slurm_job_id = *j;
  TESSERA_ASSIGN_OR_RETURN(li.slurm_restart_count, ParseInt(env, "SLURM_RESTART_COUNT", 0, false));

  if (Find(env, "OMPI_COMM_WORLD_SIZE")) {
    TESSERA_ASSIGN_OR_RETURN(li.mpi_world_size, ParseInt(env, "OMPI_COMM_WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.mpi_rank, ParseInt(env, "OMPI_COMM_WORLD_RANK", 0, true));
  } else if (Find(env, "PMI_SIZE")) {
    TESSERA_ASSIGN_OR_RETURN(li.mpi_world_size, ParseInt(env, "PMI_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.mpi_rank, ParseInt(env, "PMI_RANK", 0, true));
  }

  if (Find(env, "TESSERA_RANK_BASE") && !Find(env, "TESSERA_RANK")) {
    if (li.mpi_world_size == 0) {
      return Status::InvalidArgument("TESSERA_RANK_BASE is set but this process was not started by mpirun");
    }
    li.source = "tessera-launch";
    TESSERA_ASSIGN_OR_RETURN(int base, ParseInt(env, "TESSERA_RANK_BASE", 0, true));
    li.rank = base + li.mpi_rank;
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "TESSERA_WORLD_SIZE", 0, true));
    li.local_rank = li.rank;
  } else if (Find(env, "TESSERA_RANK")) {
    li.source = "tessera-launch";
    TESSERA_ASSIGN_OR_RETURN(li.rank, ParseInt(env, "TESSERA_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "TESSERA_WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.local_rank, ParseInt(env, "TESSERA_LOCAL_RANK", li.rank, false));
  } else if (Find(env, "OMPI_COMM_WORLD_RANK")) {
    li.source = "openmpi";
    TESSERA_ASSIGN_OR_RETURN(li.rank, ParseInt(env, "OMPI_COMM_WORLD_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "OMPI_COMM_WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.local_rank, ParseInt(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, false));
  } else if (Find(env, "PMI_RANK")) {
    li.source = "mpich";
    TESSERA_ASSIGN_OR_RETURN(li.rank, ParseInt(env, "PMI_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "PMI_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.local_rank, ParseInt(env, "MPI_LOCALRANKID", 0, false));
  } else if (Find(env, "SLURM_PROCID")) {
    li.source = "slurm";
    TESSERA_ASSIGN_OR_RETURN(li.rank, ParseInt(env, "SLURM_PROCID", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "SLURM_NTASKS", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.local_rank, ParseInt(env, "SLURM_LOCALID", 0, false));
  } else if (Find(env, "RANK") && Find(env, "WORLD_SIZE")) {
    li.source = "torchrun";
    TESSERA_ASSIGN_OR_RETURN(li.rank, ParseInt(env, "RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.world_size, ParseInt(env, "WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li.local_rank, ParseInt(env, "LOCAL_RANK", 0, false));
  }
  TESSERA_RETURN_IF_ERROR(Check(li));

  // Coordinator address: explicit TESSERA_COORDINATOR_* (set by tessera launch), else
  // torchrun's MASTER_*, else the first Slurm host, else loopback.
  if (const std::string* h = Find(env, "TESSERA_COORDINATOR_HOST")) {
    li.coordinator_host = *h;
  } else if (const std::string* m = Find(env, "MASTER_ADDR")) {
    li.coordinator_host = *m;
  } else if (li.source == "slurm" || (Find(env, "SLURM_JOB_NODELIST") && li.source == "openmpi")) {
    if (const std::string* nl = Find(env, "SLURM_JOB_NODELIST")) {
      TESSERA_ASSIGN_OR_RETURN(li.coordinator_host, FirstSlurmHost(*nl));
    }
  }
  if (Find(env, "TESSERA_COORDINATOR_PORT")) {
    TESSERA_ASSIGN_OR_RETURN(li.coordinator_port, ParseInt(env, "TESSERA_COORDINATOR_PORT", 0, true));
  } else if (Find(env, "MASTER_PORT")) {
    TESSERA_ASSIGN_OR_RETURN(li.coordinator_port, ParseInt(env, "MASTER_PORT", 0, true));
  } else if (!li.slurm_job_id.empty()) {
    // Two jobs on one node must not collide: derive the port from the job id.
    li.coordinator_port = 20000 + static_cast<int>(Mix64(std::strtoull(li.slurm_job_id.c_str(), nullptr, 10)) % 20000);
  }
  if (li.coordinator_port > 65535) return Status::InvalidArgument("coordinator port out of range");

  if (Find(env, "TESSERA_JOB_ID")) {
    const std::string& v = *Find(env, "TESSERA_JOB_ID");
    char* end = nullptr;
    li.job_id = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') return Status::InvalidArgument("TESSERA_JOB_ID='" + v + "' is not a number");
  } else if (!li.slurm_job_id.empty()) {
    li.job_id = Mix64(std::strtoull(li.slurm_job_id.c_str(), nullptr, 10));
  }
  return li;
}

}  // namespace tessera::launch
