#include "launch/job_record.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/hash.h"

namespace tessera::launch {

namespace {

std::string OneLine(std::string v) {
  for (char& c : v) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return v;
}

Result<int64_t> ParseNumber(const std::string& key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0) return Status::InvalidArgument("job record: " + key + "='" + v + "' is not a number");
  return static_cast<int64_t>(x);
}

}  // namespace

std::string EncodeJobRecord(const JobRecord& r) {
  std::string s;
  s += "rank=" + std::to_string(r.rank) + "\n";
  s += "host=" + OneLine(r.host) + "\n";
  s += "job_id=" + std::to_string(r.job_id) + "\n";
  s += "world_size=" + std::to_string(r.world_size) + "\n";
  s += "servers=" + std::to_string(r.servers) + "\n";
  s += "workers=" + std::to_string(r.workers) + "\n";
  s += "sync=" + OneLine(r.sync) + "\n";
  s += "key=" + OneLine(r.key_fingerprint) + "\n";
  s += "coordinator=" + OneLine(r.coordinator) + "\n";
  return s;
}

Result<JobRecord> DecodeJobRecord(const std::string& text) {
  JobRecord r;
  std::stringstream ss(text);
  std::string line;
  int fields = 0;
  while (std::getline(ss, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) return Status::InvalidArgument("job record: line '" + line + "' has no '='");
    const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    ++fields;
    if (k == "rank") {
      TESSERA_ASSIGN_OR_RETURN(int64_t x, ParseNumber(k, v));
      r.rank = static_cast<int>(x);
    } else if (k == "host") {
      r.host = v;
    } else if (k == "job_id") {
      char* end = nullptr;
      r.job_id = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') return Status::InvalidArgument("job record: job_id='" + v + "' is not a number");
    } else if (k == "world_size") {
      TESSERA_ASSIGN_OR_RETURN(int64_t x, ParseNumber(k, v));
      r.world_size = static_cast<int>(x);
    } else if (k == "servers") {
      TESSERA_ASSIGN_OR_RETURN(int64_t x, ParseNumber(k, v));
      r.servers = static_cast<int>(x);
    } else if (k == "workers") {
      TESSERA_ASSIGN_OR_RETURN(int64_t x, ParseNumber(k, v));
      r.workers = static_cast<int>(x);
    } else if (k == "sync") {
      r.sync = v;
    } else if (k == "key") {
      r.key_fingerprint = v;
    } else if (k == "coordinator") {
      r.coordinator = v;
    } else {
      --fields;  // a newer peer's extra field: ignored
    }
  }
  if (fields < 9) {
    return Status::InvalidArgument("job record has " + std::to_string(fields) +
                                   " of its 9 fields (a rank running another version of tessera?)");
  }
  return r;
}

Status CheckJobAgreement(const std::vector<JobRecord>& records) {
  if (records.empty()) return Status::InvalidArgument("no job records");
  const JobRecord& ref = records[0];
  std::string problems;
  int bad = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const JobRecord& r = records[i];
    std::string diff;
    auto field = [&diff](const char* name, const std::string& mine, const std::string& theirs) {
      if (mine == theirs) return;
      diff += std::string(diff.empty() ? "" : ", ") + name + " " + (mine.empty() ? "(none)" : mine) + " vs rank 0's " +
              (theirs.empty() ? "(none)" : theirs);
    };
    if (r.rank != static_cast<int>(i)) field("rank", std::to_string(r.rank), std::to_string(i) + " (its MPI rank)");
    field("job id", std::to_string(r.job_id), std::to_string(ref.job_id));
    field("world size", std::to_string(r.world_size), std::to_string(ref.world_size));
    field("--servers", std::to_string(r.servers), std::to_string(ref.servers));
    field("--workers", std::to_string(r.workers), std::to_string(ref.workers));
    field("--sync", r.sync, ref.sync);
    field("job key", r.key_fingerprint, ref.key_fingerprint);
    if (r.world_size == ref.world_size && static_cast<int>(records.size()) != r.world_size) {
      field("world size", std::to_string(r.world_size), std::to_string(records.size()) + " (ranks that answered)");
    }
    if (diff.empty()) continue;
    ++bad;
    problems += "\n  rank " + std::to_string(i) + " on " + (r.host.empty() ? "an unnamed host" : r.host) + ": " + diff;
  }
  if (ref.coordinator.empty()) problems += "\n  rank 0 on " + ref.host + " published no coordinator endpoint";
  if (problems.empty()) return Status::OK();
  return Status::InvalidArgument("the ranks disagree about the job (" + std::to_string(bad) +
                                 " rank(s) started differently from rank 0 on " + ref.host + "):" + problems);
}

std::string KeyFingerprint(const std::string& public_key) {
  if (public_key.empty()) return "";
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, Mix64(Fnv1a64(public_key.data(), public_key.size())));
  return buf;
}

}  // namespace tessera::launch
