#include "common/run_identity.h"

namespace tessera {

namespace {
RunIdentity& Current() {
  static RunIdentity id;
  return id;
}
}  // namespace

std::string RunIdentity::LogSuffix() const {
  std::string s;
  if (!slurm_job_id.empty()) s = "slurm " + slurm_job_id + " requeue " + std::to_string(slurm_restart_count);
  if (restart_count > 0) s += (s.empty() ? "" : " ") + std::string("restart ") + std::to_string(restart_count);
  return s;
}

std::vector<std::pair<std::string, std::string>> RunIdentity::Metadata() const {
  return {{"slurm_job_id", slurm_job_id},
          {"slurm_restart_count", std::to_string(slurm_restart_count)},
          {"restart_count", std::to_string(restart_count)},
          {"launch_source", launch_source}};
}

const RunIdentity& CurrentRunIdentity() { return Current(); }
void SetRunIdentity(const RunIdentity& id) { Current() = id; }

}  // namespace tessera
