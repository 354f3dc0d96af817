#include "observe/metrics_log.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace tessera::observe {

namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Status Bad(const std::string& where, const std::string& what) { return Status::InvalidArgument(where + ": " + what); }

// A number field: NaN when it is null (the writer's non-finite value) or, unless
// required, absent.
Status Number(const json& j, const char* key, bool required, const std::string& where, double* out) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return Bad(where, std::string("\"") + key + "\" is missing");
    *out = kNaN;
    return Status::OK();
  }
  if (it->is_null()) {
    *out = kNaN;
    return Status::OK();
  }
  if (!it->is_number()) return Bad(where, std::string("\"") + key + "\" is " + it->dump() + ", not a number");
  *out = it->get<double>();
  return Status::OK();
}

Status Integer(const json& j, const char* key, const std::string& where, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) return Bad(where, std::string("\"") + key + "\" is missing");
  if (!it->is_number_integer()) return Bad(where, std::string("\"") + key + "\" is " + it->dump() + ", not an integer");
  *out = it->get<int64_t>();
  return Status::OK();
}

}  // namespace

Result<MetricsLog> ReadMetricsLog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot open the metrics file");
  MetricsLog log;
  log.path = path;
  log.name = std::filesystem::path(path).stem().string();
  std::string line;
  int lineno = 0;
  bool any = false;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string where = path + ":" + std::to_string(lineno);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Bad(where, "not valid JSON: " + line.substr(0, 80));
    if (!j.is_object()) return Bad(where, "not a JSON object");
    auto ev = j.find("event");
    if (ev == j.end() || !ev->is_string()) return Bad(where, "no \"event\" string");
    const std::string event = ev->get<std::string>();
    if (event == "step") {
      StepPoint p;
      TESSERA_RETURN_IF_ERROR(Integer(j, "step", where, &p.step));
      TESSERA_RETURN_IF_ERROR(Number(j, "loss", true, where, &p.loss));
      TESSERA_RETURN_IF_ERROR(Number(j, "samples_per_sec", false, where, &p.samples_per_sec));
      log.steps.push_back(p);
    } else if (event == "eval") {
      EvalPoint p;
      TESSERA_RETURN_IF_ERROR(Integer(j, "step", where, &p.step));
      TESSERA_RETURN_IF_ERROR(Number(j, "test_accuracy", false, where, &p.accuracy));
      TESSERA_RETURN_IF_ERROR(Number(j, "test_loss", false, where, &p.loss));
      log.evals.push_back(p);
    } else if (event == "summary") {
      log.summary.clear();
      log.summary_numbers.clear();
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == "event") continue;
        log.summary.emplace_back(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
        if (it->is_number()) log.summary_numbers[it.key()] = it->get<double>();
      }
    } else if (event == "rank_metrics") {
      RankPoint p;
      auto role = j.find("role");
      if (role == j.end() || !role->is_string()) return Bad(where, "rank_metrics without a \"role\" string");
      p.role = role->get<std::string>();
      TESSERA_RETURN_IF_ERROR(Integer(j, "rank", where, &p.rank));
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it->is_number() && it.key() != "rank") p.values[it.key()] = it->get<double>();
      }
      log.ranks.push_back(std::move(p));
    } else {
      continue;  // checkpoint and events of newer writers
    }
    any = true;
  }
  if (in.bad()) return Status::InvalidArgument(path + ": read error after line " + std::to_string(lineno));
  if (!any) {
    return Status::InvalidArgument(path + ": no step, eval, summary or rank_metrics event in " + std::to_string(lineno) +
                                   " lines (is it a --metrics_out file?)");
  }
  return log;
}

}  // namespace tessera::observe
