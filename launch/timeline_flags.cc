#include "launch/timeline_flags.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "common/timeline.h"

DEFINE_string(timeline, "",
              "Write a Chrome trace of every server's and worker's spans (FILE.server0.json, FILE.worker0.json, ...; "
              "tessera launch merges them into FILE) (\"\" = off)");

namespace tessera::launch {

namespace {

std::string Stem(const std::string& flag) {
  constexpr std::string_view kExt = ".json";
  if (flag.size() > kExt.size() && flag.compare(flag.size() - kExt.size(), kExt.size(), kExt) == 0) {
    return flag.substr(0, flag.size() - kExt.size());
  }
  return flag;
}

}  // namespace

std::string TimelineFlag() { return FLAGS_timeline; }

std::string TimelineProcessPath(const std::string& flag, const std::string& role) {
  return Stem(flag) + "." + role + ".json";
}

TimelineRecording::~TimelineRecording() { timeline::Stop(); }

Status TimelineRecording::Start(int rank, int servers) {
  if (FLAGS_timeline.empty() || rank == 0) return Status::OK();
  const bool server = rank <= servers;
  const int index = server ? rank - 1 : rank - 1 - servers;
  const std::string role = (server ? "server" : "worker") + std::to_string(index);
  timeline::Options o;
  o.path = TimelineProcessPath(FLAGS_timeline, role);
  o.pid = rank;
  o.process_name = (server ? "server " : "worker ") + std::to_string(index) + " (rank " + std::to_string(rank) + ")";
  // Workers first: their steps are what one reads first.
  o.sort_index = server ? 1000 + index : index;
  TESSERA_RETURN_IF_ERROR(timeline::Start(o));
  timeline::SetThreadName("main");
  LOG(INFO) << "recording the timeline into " << o.path;
  return Status::OK();
}

namespace {

// (role, index, path) of every per-process file of `flag`, workers first.
Result<std::vector<std::tuple<std::string, long, std::string>>> ProcessFiles(const std::string& flag) {
  namespace fs = std::filesystem;
  const std::string stem = Stem(flag);
  const fs::path stem_path(stem);
  const fs::path dir = stem_path.has_parent_path() ? stem_path.parent_path() : fs::path(".");
  const std::string prefix = stem_path.filename().string() + ".";
  // (role, index, path) of every per-process file.
  std::vector<std::tuple<std::string, long, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() + 5 || name.rfind(prefix, 0) != 0 || !name.ends_with(".json")) continue;
    const std::string mid = name.substr(prefix.size(), name.size() - prefix.size() - 5);
    for (const char* role : {"server", "worker"}) {
      const std::string r(role);
      if (mid.size() > r.size() && mid.rfind(r, 0) == 0 &&
          std::all_of(mid.begin() + static_cast<long>(r.size()), mid.end(), [](unsigned char c) { return std::isdigit(c); })) {
        found.emplace_back(r, std::stol(mid.substr(r.size())), entry.path().string());
      }
    }
  }
  if (ec) return Status::NotFound("--timeline=" + flag + ": cannot list " + dir.string() + ": " + ec.message());
  // Workers first, like the tracks.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) == "worker";
    return std::get<1>(a) < std::get<1>(b);
  });
  return found;
}

}  // namespace

void RemoveTimelines(const std::string& flag) {
  auto found = ProcessFiles(flag);
  if (!found.ok()) return;
  for (const auto& f : *found) {
    std::error_code ec;
    std::filesystem::remove(std::get<2>(f), ec);
  }
}

Status MergeTimelines(const std::string& flag, int* merged) {
  namespace fs = std::filesystem;
  *merged = 0;
  TESSERA_ASSIGN_OR_RETURN(auto found, ProcessFiles(flag));
  if (found.empty()) {
    return Status::NotFound("--timeline=" + flag + ": no per-process files " + Stem(flag) +
                            ".server<N>.json / .worker<N>.json");
  }
  std::ostringstream out;
  out << "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"writer\":\"tessera timeline (merged)\"},\"traceEvents\":[";
  bool first = true;
  for (const auto& [role, index, path] : found) {
    std::ifstream in(path);
    if (!in) return Status::NotFound(path + ": cannot read");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("traceEvents") || !j["traceEvents"].is_array()) {
      return Status::Corruption(path + ": not a Chrome trace (a JSON object with a \"traceEvents\" array)");
    }
    for (const auto& e : j["traceEvents"]) {
      out << (first ? "\n" : ",\n") << e.dump();
      first = false;
    }
    ++*merged;
  }
  out << "\n]}\n";
  const std::string tmp = flag + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    o << out.str();
    o.close();
    if (!o) return Status::InvalidArgument("--timeline=" + flag + ": cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, flag, ec);
  if (ec) return Status::InvalidArgument("--timeline=" + flag + ": cannot rename " + tmp + ": " + ec.message());
  return Status::OK();
}

std::string TimelineFromArgs(const std::vector<std::string>& args) {
  std::string value;
  for (size_t i = 0; i < args.size(); ++i) {
    for (const char* p : {"--timeline=", "-timeline="}) {
      if (args[i].rfind(p, 0) == 0) value = args[i].substr(std::strlen(p));
    }
    if ((args[i] == "--timeline" || args[i] == "-timeline") && i + 1 < args.size()) value = args[i + 1];
  }
  return value;
}

}  // namespace tessera::launch
