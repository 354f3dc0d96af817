#include "launch/env.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/hash.h"
#include "launch/env_detect.h"
#include "launch/net_iface.h"

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

// Sets li->spans_hosts from the launcher's per-node counts (the header lists them).
Status DetectSpansHosts(const EnvMap& env, LaunchInfo* li) {
  auto fewer = [&](const char* local, const char* total) -> Result<bool> {
    if (!Find(env, local) || !Find(env, total)) return false;
    TESSERA_ASSIGN_OR_RETURN(int l, ParseInt(env, local, 0, true));
    TESSERA_ASSIGN_OR_RETURN(int t, ParseInt(env, total, 0, true));
    return l < t;
  };
  std::vector<std::pair<const char*, const char*>> pairs;
  // tessera launch is one host by construction; the others say it per node.
  if (li->source == "openmpi") {
    pairs = {{"OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_SIZE"}};
  } else if (li->source == "mpich") {
    pairs = {{"MPI_LOCALNRANKS", "PMI_SIZE"}};
  } else if (li->source == "torchrun") {
    pairs = {{"LOCAL_WORLD_SIZE", "WORLD_SIZE"}};
  }
  for (const auto& [local, total] : pairs) {
    TESSERA_ASSIGN_OR_RETURN(bool f, fewer(local, total));
    if (f) {
      li->spans_hosts = true;
      li->spans_from = std::string(local) + " < " + total;
      return Status::OK();
    }
  }
  if (li->source == "slurm") {
    for (const char* var : {"SLURM_STEP_NUM_NODES", "SLURM_NNODES"}) {
      if (!Find(env, var)) continue;
      TESSERA_ASSIGN_OR_RETURN(int nodes, ParseInt(env, var, 1, true));
      if (nodes > 1) {
        li->spans_hosts = true;
        li->spans_from = std::string(var) + "=" + std::to_string(nodes);
      }
      break;
    }
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

namespace {

// Splits at commas outside brackets.
Result<std::vector<std::string>> SplitTopLevel(const std::string& list) {
  std::vector<std::string> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    char c = i < list.size() ? list[i] : ',';
    if (c == '[') {
      if (++depth > 1) return Status::InvalidArgument("nested '[' in node list '" + list + "'");
    } else if (c == ']') {
      if (--depth < 0) return Status::InvalidArgument("unbalanced ']' in node list '" + list + "'");
    } else if (c == ',' && depth == 0) {
      if (i == start) return Status::InvalidArgument("empty host name in node list '" + list + "'");
      out.push_back(list.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) return Status::InvalidArgument("unbalanced '[' in node list '" + list + "'");
  return out;
}

bool AllDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Appends every expansion of one host pattern ("gpu[01-03]-ib[1,2]") to *out.
Status ExpandPattern(const std::string& pattern, const std::string& list, size_t max_hosts,
                     std::vector<std::string>* out) {
  size_t lb = pattern.find('[');
  if (lb == std::string::npos) {
    if (out->size() >= max_hosts) {
      return Status::InvalidArgument("node list '" + list + "' has more than " + std::to_string(max_hosts) + " hosts");
    }
    out->push_back(pattern);
    return Status::OK();
  }
  size_t rb = pattern.find(']', lb);
  const std::string head = pattern.substr(0, lb), tail = pattern.substr(rb + 1);
  const std::string inner = pattern.substr(lb + 1, rb - lb - 1);
  size_t start = 0;
  for (size_t i = 0; i <= inner.size(); ++i) {
    if (i < inner.size() && inner[i] != ',') continue;
    const std::string range = inner.substr(start, i - start);
    start = i + 1;
    size_t dash = range.find('-');
    const std::string lo = range.substr(0, dash), hi = dash == std::string::npos ? lo : range.substr(dash + 1);
    if (!AllDigits(lo) || !AllDigits(hi) || lo.size() > 9 || hi.size() > 9) {
      return Status::InvalidArgument("bad range '" + range + "' in node list '" + list + "'");
    }
    const long a = std::stol(lo), b = std::stol(hi);
    if (b < a) return Status::InvalidArgument("descending range '" + range + "' in node list '" + list + "'");
    for (long n = a; n <= b; ++n) {
      std::string num = std::to_string(n);
      if (num.size() < lo.size()) num.insert(0, lo.size() - num.size(), '0');  // keep "01"
      TESSERA_RETURN_IF_ERROR(ExpandPattern(head + num + tail, list, max_hosts, out));
    }
  }
  return Status::OK();
}

}  // namespace

Result<std::vector<std::string>> ExpandSlurmNodeList(const std::string& nodelist, size_t max_hosts) {
  if (nodelist.empty()) return Status::InvalidArgument("empty SLURM_JOB_NODELIST");
  TESSERA_ASSIGN_OR_RETURN(auto items, SplitTopLevel(nodelist));
  std::vector<std::string> hosts;
  for (const auto& item : items) TESSERA_RETURN_IF_ERROR(ExpandPattern(item, nodelist, max_hosts, &hosts));
  return hosts;
}

Result<std::string> FirstSlurmHost(const std::string& nodelist) {
  if (nodelist.empty()) return Status::InvalidArgument("empty SLURM_JOB_NODELIST");
  TESSERA_ASSIGN_OR_RETURN(auto items, SplitTopLevel(nodelist));
  // Each bracket group contributes the first number of its first range.
  std::string host = items[0];
  for (size_t lb; (lb = host.find('[')) != std::string::npos;) {
    size_t rb = host.find(']', lb);
    std::string head = host.substr(lb + 1, rb - lb - 1);
    head = head.substr(0, head.find_first_of(",-"));
    if (!AllDigits(head)) return Status::InvalidArgument("bad range in node list '" + nodelist + "'");
    host = host.substr(0, lb) + head + host.substr(rb + 1);
  }
  return host;
}

int DeviceForLocalRank(int local_rank, int device_count) {
  if (device_count <= 0 || local_rank < 0) return -1;
  return local_rank % device_count;
}

RunIdentity RunIdentityOf(const LaunchInfo& li) {
  RunIdentity id;
  id.slurm_job_id = li.slurm_job_id;
  id.slurm_restart_count = li.slurm_restart_count;
  id.restart_count = li.restart_count;
  id.launch_source = li.source;
  return id;
}

namespace detect {
namespace {

// Open MPI's job id (PMIx's namespace under srun --mpi=pmix), or null.
const std::string* OmpiJobId(const EnvMap& env) {
  const std::string* ompi_job = Find(env, "OMPI_MCA_ess_base_jobid");
  return ompi_job != nullptr ? ompi_job : Find(env, "PMIX_NAMESPACE");
}

}  // namespace

Status MpiWorld(const EnvMap& env, LaunchInfo* li) {
  if (Find(env, "OMPI_COMM_WORLD_SIZE")) {
    TESSERA_ASSIGN_OR_RETURN(li->mpi_world_size, ParseInt(env, "OMPI_COMM_WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->mpi_rank, ParseInt(env, "OMPI_COMM_WORLD_RANK", 0, true));
  } else if (Find(env, "PMI_SIZE")) {
    TESSERA_ASSIGN_OR_RETURN(li->mpi_world_size, ParseInt(env, "PMI_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->mpi_rank, ParseInt(env, "PMI_RANK", 0, true));
    if (Find(env, "PMI_FD")) {
      TESSERA_ASSIGN_OR_RETURN(li->pmi_fd, ParseInt(env, "PMI_FD", 0, true));
    }
  }
  return Status::OK();
}

Status Rank(const EnvMap& env, LaunchInfo* li) {
  // The local rank when the chosen launcher does not say: Hydra/Intel MPI, PALS, Slurm.
  auto local_fallback = [&env]() -> Result<int> {
    for (const char* v : {"MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"}) {
      if (Find(env, v)) return ParseInt(env, v, 0, true);
    }
    return 0;
  };
  if (Find(env, "TESSERA_RANK_BASE") && !Find(env, "TESSERA_RANK")) {
    if (li->mpi_world_size == 0) {
      return Status::InvalidArgument("TESSERA_RANK_BASE is set but this process was not started by mpirun");
    }
    li->source = "tessera-launch";
    TESSERA_ASSIGN_OR_RETURN(int base, ParseInt(env, "TESSERA_RANK_BASE", 0, true));
    li->rank = base + li->mpi_rank;
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "TESSERA_WORLD_SIZE", 0, true));
    li->local_rank = li->rank;
  } else if (Find(env, "TESSERA_RANK")) {
    li->source = "tessera-launch";
    TESSERA_ASSIGN_OR_RETURN(li->rank, ParseInt(env, "TESSERA_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "TESSERA_WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->local_rank, ParseInt(env, "TESSERA_LOCAL_RANK", li->rank, false));
  } else if (Find(env, "OMPI_COMM_WORLD_RANK")) {
    li->source = "openmpi";
    TESSERA_ASSIGN_OR_RETURN(li->rank, ParseInt(env, "OMPI_COMM_WORLD_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "OMPI_COMM_WORLD_SIZE", 0, true));
    if (Find(env, "OMPI_COMM_WORLD_LOCAL_RANK")) {
      TESSERA_ASSIGN_OR_RETURN(li->local_rank, ParseInt(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, true));
    } else {
      TESSERA_ASSIGN_OR_RETURN(li->local_rank, local_fallback());
    }
  } else if (Find(env, "PMI_RANK")) {
    li->source = "mpich";
    TESSERA_ASSIGN_OR_RETURN(li->rank, ParseInt(env, "PMI_RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "PMI_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->local_rank, local_fallback());
  } else if (Find(env, "SLURM_PROCID")) {
    li->source = "slurm";
    TESSERA_ASSIGN_OR_RETURN(li->rank, ParseInt(env, "SLURM_PROCID", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "SLURM_NTASKS", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->local_rank, ParseInt(env, "SLURM_LOCALID", 0, false));
  } else if (Find(env, "RANK") && Find(env, "WORLD_SIZE")) {
    li->source = "torchrun";
    TESSERA_ASSIGN_OR_RETURN(li->rank, ParseInt(env, "RANK", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->world_size, ParseInt(env, "WORLD_SIZE", 0, true));
    TESSERA_ASSIGN_OR_RETURN(li->local_rank, ParseInt(env, "LOCAL_RANK", 0, false));
  }
  return Check(*li);
}

Status PmixRankAgrees(const EnvMap& env, const LaunchInfo& li) {
  // PMIx (Open MPI's runtime, srun --mpi=pmix) states the rank too: a different one means
  // the environment was mixed up (e.g. a wrapper exported another launcher's variables).
  if (const std::string* pr = Find(env, "PMIX_RANK"); pr && (li.source == "openmpi" || li.source == "slurm")) {
    TESSERA_ASSIGN_OR_RETURN(int pmix_rank, ParseInt(env, "PMIX_RANK", 0, true));
    if (pmix_rank != li.rank) {
      return Status::InvalidArgument("PMIX_RANK=" + *pr + " disagrees with rank " + std::to_string(li.rank) +
                                     " from " + li.source);
    }
  }
  return Status::OK();
}

const std::string& RankVariables(const std::string& source) {
  static const std::map<std::string, std::string> kRankVars = {
      {"tessera-launch", "TESSERA_RANK/TESSERA_WORLD_SIZE"},
      {"openmpi", "OMPI_COMM_WORLD_RANK/SIZE"},
      {"mpich", "PMI_RANK/PMI_SIZE"},
      {"slurm", "SLURM_PROCID/SLURM_NTASKS"},
      {"torchrun", "RANK/WORLD_SIZE"},
      {"single", "no launcher variables"}};
  return kRankVars.at(source);
}

Result<std::string> CoordinatorHost(const EnvMap& env, LaunchInfo* li) {
  // Explicit TESSERA_COORDINATOR_* (set by tessera launch), else torchrun's MASTER_*,
  // else the first host of the Slurm step, else loopback.
  std::string host_from = "default 127.0.0.1";
  if (const std::string* h = Find(env, "TESSERA_COORDINATOR_HOST")) {
    li->coordinator_host = *h;
    host_from = "TESSERA_COORDINATOR_HOST";
    li->coordinator_host_explicit = true;
  } else if (const std::string* m = Find(env, "MASTER_ADDR")) {
    li->coordinator_host = *m;
    host_from = "MASTER_ADDR";
    li->coordinator_host_explicit = true;
  } else if (li->source != "tessera-launch" && li->source != "single") {
    // Rank 0 runs on the first node of its step (srun places it there; mpirun inside an
    // allocation too). The step's own list: a step on a subset of the nodes, or one of
    // several concurrent steps, does not start on the allocation's first node.
    for (const char* var : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"}) {
      const std::string* nl = Find(env, var);
      if (nl == nullptr) continue;
      TESSERA_ASSIGN_OR_RETURN(li->coordinator_host, FirstSlurmHost(*nl));
      host_from = std::string("first host of ") + var;
      break;
    }
  }
  li->coordinator_host_from = host_from;
  if (li->coordinator_host_explicit && !IsLoopbackHost(li->coordinator_host) && !li->spans_hosts) {
    li->spans_hosts = true;
    li->spans_from = host_from + " is not loopback";
  }
  return host_from;
}

Result<std::string> CoordinatorPort(const EnvMap& env, LaunchInfo* li) {
  // A port derived from a job key: every rank of the job computes the same one, and two
  // jobs on one node (almost always) differ. 20000-31999 stays below Linux's ephemeral
  // range (32768-60999), where srun's own listening sockets and every outgoing
  // connection's local port live: a derived port inside it was seen taken by srun.
  auto derived_port = [](const std::string& key) { return 20000 + static_cast<int>(Mix64(Fnv1a64(key.data(), key.size())) % 12000); };
  std::string port_from = "none";
  const std::string* ompi_job = OmpiJobId(env);
  if (Find(env, "TESSERA_COORDINATOR_PORT")) {
    TESSERA_ASSIGN_OR_RETURN(li->coordinator_port, ParseInt(env, "TESSERA_COORDINATOR_PORT", 0, true));
    port_from = "TESSERA_COORDINATOR_PORT";
  } else if (Find(env, "MASTER_PORT")) {
    TESSERA_ASSIGN_OR_RETURN(li->coordinator_port, ParseInt(env, "MASTER_PORT", 0, true));
    port_from = "MASTER_PORT";
  } else if (!li->slurm_job_id.empty()) {
    // Each step of an allocation gets its own port: concurrent steps never collide.
    if (const std::string* step = Find(env, "SLURM_STEP_ID")) {
      li->coordinator_port = derived_port(li->slurm_job_id + "." + *step);
      port_from = "derived from SLURM_JOB_ID and SLURM_STEP_ID";
    } else {
      li->coordinator_port = 20000 + static_cast<int>(Mix64(std::strtoull(li->slurm_job_id.c_str(), nullptr, 10)) % 12000);
      port_from = "derived from SLURM_JOB_ID";
    }
  } else if (li->source == "openmpi" && ompi_job != nullptr) {
    li->coordinator_port = derived_port(*ompi_job);
    port_from = "derived from Open MPI's job id";
  }
  // tessera launch binds the coordinator's port itself and hands rank 0 the listening socket.
  if (Find(env, "TESSERA_COORDINATOR_FD") && li->rank == 0) {
    TESSERA_ASSIGN_OR_RETURN(li->coordinator_listen_fd, ParseInt(env, "TESSERA_COORDINATOR_FD", 0, true));
    port_from += " (bound by the launcher, inherited as fd " + std::to_string(li->coordinator_listen_fd) + ")";
  }
  return port_from;
}

Status JobId(const EnvMap& env, LaunchInfo* li) {
  const std::string* ompi_job = OmpiJobId(env);
  if (Find(env, "TESSERA_JOB_ID")) {
    const std::string& v = *Find(env, "TESSERA_JOB_ID");
    char* end = nullptr;
    li->job_id = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') return Status::InvalidArgument("TESSERA_JOB_ID='" + v + "' is not a number");
  } else if (!li->slurm_job_id.empty()) {
    li->job_id = Mix64(std::strtoull(li->slurm_job_id.c_str(), nullptr, 10));
  } else if (li->source == "openmpi" && ompi_job != nullptr) {
    li->job_id = Mix64(Fnv1a64(ompi_job->data(), ompi_job->size()) ^ 0x6d706972756eULL);
  }
  return Status::OK();
}

}  // namespace detect

Result<LaunchInfo> DetectLaunchEnv(const EnvMap& env) {
  LaunchInfo li;
  if (const std::string* j = Find(env, "SLURM_JOB_ID")) li.slurm_job_id = *j;
  TESSERA_ASSIGN_OR_RETURN(li.slurm_restart_count, ParseInt(env, "SLURM_RESTART_COUNT", 0, false));
  TESSERA_ASSIGN_OR_RETURN(li.restart_count, ParseInt(env, "TESSERA_RESTART_COUNT", 0, false));
  TESSERA_RETURN_IF_ERROR(detect::MpiWorld(env, &li));
  TESSERA_RETURN_IF_ERROR(detect::Rank(env, &li));
  TESSERA_RETURN_IF_ERROR(detect::PmixRankAgrees(env, li));
  li.detail = "rank from " + detect::RankVariables(li.source);
  TESSERA_RETURN_IF_ERROR(DetectSpansHosts(env, &li));
  TESSERA_ASSIGN_OR_RETURN(const std::string host_from, detect::CoordinatorHost(env, &li));
  TESSERA_ASSIGN_OR_RETURN(const std::string port_from, detect::CoordinatorPort(env, &li));
  li.detail += ", coordinator host from " + host_from + ", port " + port_from;
  if (li.coordinator_port > 65535) return Status::InvalidArgument("coordinator port out of range");
  TESSERA_RETURN_IF_ERROR(detect::JobId(env, &li));
  if (const std::string* v = Find(env, "CUDA_VISIBLE_DEVICES")) {
    li.cuda_visible_devices_set = true;
    li.cuda_visible_devices = *v;
  }
  return li;
}

}  // namespace tessera::launch
