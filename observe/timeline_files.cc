#include "observe/timeline_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>
#include <vector>

namespace tessera::observe {

namespace {

std::string Stem(const std::string& flag) {
  constexpr std::string_view kExt = ".json";
  if (flag.size() > kExt.size() && flag.compare(flag.size() - kExt.size(), kExt.size(), kExt) == 0) {
    return flag.substr(0, flag.size() - kExt.size());
  }
  return flag;
}

}  // namespace

std::string TimelineProcessPath(const std::string& flag, const std::string& role) {
  return Stem(flag) + "." + role + ".json";
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

}  // namespace tessera::observe
