#include "checkpoint/catalog.h"

#include <glog/logging.h>

#include <algorithm>
#include <cinttypes>
#include <filesystem>
#include <set>

#include "checkpoint/shard_db.h"

namespace tessera::checkpoint {
namespace fs = std::filesystem;

std::string StepDirName(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step-%012" PRId64, step);
  return buf;
}

std::string StepDir(const std::string& dir, int64_t step) { return dir + "/" + StepDirName(step); }

Result<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& dir) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("step-", 0) != 0 || !it->is_directory()) continue;
    char* end = nullptr;
    const long long step = std::strtoll(name.c_str() + 5, &end, 10);
    if (*end != '\0' || step < 0) continue;
    CheckpointInfo info;
    info.step = step;
    info.path = it->path().string();
    info.complete = fs::exists(it->path() / kManifestName);
    auto files = ListFiles(info.path);
    if (files.ok()) {
      for (const auto& f : *files) info.bytes += f.size;
    }
    out.push_back(std::move(info));
  }
  if (ec) return Status::IOError("listing " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

Result<std::vector<std::pair<std::string, Manifest>>> Chain(const std::string& step_dir, const Manifest& m) {
  std::vector<std::pair<std::string, Manifest>> chain{{step_dir, m}};
  const std::string parent_dir = fs::path(step_dir).parent_path().string();
  while (!chain.back().second.full) {
    const int64_t parent = chain.back().second.parent_step;
    if (parent < 0 || parent >= chain.back().second.step) {
      return Status::Corruption(chain.back().first + ": incremental checkpoint without a valid parent step");
    }
    const std::string pdir = StepDir(parent_dir, parent);
    auto pm = ReadManifest(pdir);
    if (!pm.ok()) return pm.status().WithContext("parent of " + chain.back().first);
    chain.emplace_back(pdir, std::move(pm).value());
  }
  return chain;
}

namespace {

Status VerifyOne(const std::string& step_dir, const Manifest& m, VerifyReport* report) {
  for (const ServerPart& s : m.servers) {
    const std::string db = step_dir + "/" + s.dir;
    for (const FileEntry& f : s.files) {
      const std::string path = db + "/" + f.name;
      std::error_code ec;
      const auto size = fs::file_size(path, ec);
      if (ec) return Status::NotFound(path + " is listed in the manifest but missing");
      if (size != f.size) {
        return Status::Corruption(path + " has " + std::to_string(size) + " bytes, the manifest says " +
                                  std::to_string(f.size));
      }
    }
    TESSERA_ASSIGN_OR_RETURN(auto reader, ShardReader::Open(db));
    TESSERA_ASSIGN_OR_RETURN(ScanStats scan, reader->Scan());
    if (scan.records != s.records || scan.digest != s.digest) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), ": %" PRIu64 " records with digest %016" PRIx64 ", the manifest says %" PRIu64
                    " with %016" PRIx64, scan.records, scan.digest, s.records, s.digest);
      return Status::Corruption(db + buf);
    }
    if (report != nullptr) {
      report->records += scan.records;
      report->bytes += s.bytes;
    }
  }
  return Status::OK();
}

}  // namespace

Status VerifyCheckpoint(const std::string& step_dir, VerifyReport* report) {
  TESSERA_ASSIGN_OR_RETURN(Manifest m, ReadManifest(step_dir));
  TESSERA_ASSIGN_OR_RETURN(auto chain, Chain(step_dir, m));
  for (const auto& [dir, cm] : chain) TESSERA_RETURN_IF_ERROR(VerifyOne(dir, cm, report));
  return Status::OK();
}

Result<std::string> ChooseResume(const std::string& dir, const std::string& mode) {
  if (mode == "none") return std::string();
  if (mode != "auto") {
    std::string path = mode;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    Status st = VerifyCheckpoint(path);
    if (!st.ok()) return st.WithContext("--resume=" + mode);
    return path;
  }
  if (dir.empty()) return std::string();
  TESSERA_ASSIGN_OR_RETURN(auto all, ListCheckpoints(dir));
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!it->complete) continue;
    Status st = VerifyCheckpoint(it->path);
    if (st.ok()) return it->path;
    LOG(WARNING) << "not resuming from the checkpoint of step " << it->step << ": " << st.ToString()
                 << "; trying an older one";
  }
  return std::string();
}

Result<uint64_t> CollectGarbage(const std::string& dir, int keep, int64_t in_progress) {
  TESSERA_ASSIGN_OR_RETURN(auto all, ListCheckpoints(dir));
  std::set<int64_t> keep_steps;
  int kept = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (!it->complete) continue;
    if (keep > 0 && kept >= keep) break;
    ++kept;
    keep_steps.insert(it->step);
    auto m = ReadManifest(it->path);
    if (!m.ok()) continue;  // damaged: kept for inspection until it ages out
    auto chain = Chain(it->path, *m);
    if (chain.ok()) {
      for (const auto& c : *chain) keep_steps.insert(c.second.step);
    }
  }
  uint64_t removed = 0;
  for (const auto& c : all) {
    if (c.step == in_progress || keep_steps.count(c.step)) continue;
    if (c.complete && keep <= 0) continue;
    std::error_code ec;
    LOG(INFO) << "checkpoint gc: removing " << (c.complete ? "old checkpoint " : "unfinished checkpoint ") << c.path;
    fs::remove_all(c.path, ec);
    if (ec) return Status::IOError("removing " + c.path + ": " + ec.message());
    removed += c.bytes;
  }
  return removed;
}

}  // namespace tessera::checkpoint
