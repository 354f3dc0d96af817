#include "tests/testutil/job_run.h"

#include <fstream>

#include "tests/testutil/testutil.h"

namespace tessera::testing {

std::string JsonField(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t p = json.find(k);
  if (p == std::string::npos) return "";
  p += k.size();
  if (json[p] == '"') return json.substr(p + 1, json.find('"', p + 1) - p - 1);
  return json.substr(p, json.find_first_of(",}", p) - p);
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string LaunchCommand(const std::string& flags, const std::string& metrics, int servers, int workers,
                          int grace_s) {
  return TesseraBinary() + " launch --servers " + std::to_string(servers) + " --workers " + std::to_string(workers) +
         " --grace_s " + std::to_string(grace_s) + " " + flags + " --metrics_out=" + metrics;
}

JobRun RunJobCommand(const std::string& command, const std::string& metrics, int timeout_s) {
  CommandResult r = RunCommand(command, timeout_s);
  return {r.exit_code, r.output, ReadLines(metrics)};
}

std::vector<std::string> Events(const JobRun& run, const std::string& event) {
  std::vector<std::string> out;
  for (const auto& l : run.metrics) {
    if (JsonField(l, "event") == event) out.push_back(l);
  }
  return out;
}

}  // namespace tessera::testing
