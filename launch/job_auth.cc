#include "launch/job_auth.h"

#include <glog/logging.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/hostname.h"

namespace tessera::launch {

namespace {

bool Exists(const std::string& path) {
  struct stat sb;
  return ::stat(path.c_str(), &sb) == 0;
}

Result<JobAuth> Keyed(AuthMode mode, const std::string& path) {
  if (mode == AuthMode::kCurve && !wire::CurveAvailable()) {
    return Status::FailedPrecondition("--auth=curve: this libzmq was built without CURVE (use --auth=mac)");
  }
  TESSERA_ASSIGN_OR_RETURN(wire::CurveKeys keys, wire::ReadCurveKeyFile(path));
  return JobAuth{mode, keys, path};
}

}  // namespace

const char* AuthModeName(AuthMode m) {
  switch (m) {
    case AuthMode::kNone:
      return "none";
    case AuthMode::kMac:
      return "mac";
    case AuthMode::kCurve:
      return "curve";
  }
  return "?";
}

Result<JobAuth> ResolveJobAuth(const std::string& mode, const std::string& key_file_flag, const EnvMap& env,
                               int rank, bool spans_hosts, Duration wait) {
  if (mode != "auto" && mode != "mac" && mode != "curve" && mode != "none") {
    return Status::InvalidArgument("--auth=" + mode + ": expected mac, curve, none or auto");
  }
  if (mode == "none") {
    // On loopback only local users can reach the ports: the user chose that, say nothing.
    if (spans_hosts) {
      LOG(WARNING) << "******** --auth=none on a job that spans hosts: its sockets are neither authenticated nor "
                      "encrypted; anyone on the network who can reach its ports can join it, read its traffic or "
                      "push updates. Use --auth=mac (the default with a key file) unless the network is trusted. "
                      "********";
    }
    return JobAuth{};
  }
  std::string path = key_file_flag;
  if (path.empty()) {
    auto it = env.find(kAuthKeyFileEnv);
    if (it != env.end()) path = it->second;
  }
  if (path.empty()) {
    if (mode != "auto" || spans_hosts) {
      return Status::InvalidArgument(
          (mode != "auto" ? "--auth=" + mode : std::string("this job spans hosts, so it")) +
          " needs a key file: pass --auth_key_file=PATH on a file system every rank can read (rank 0 creates "
          "it when missing), start it with `tessera launch`, or accept an open cluster with --auth=none");
    }
    LOG(WARNING) << "no job key file (--auth_key_file, $" << kAuthKeyFileEnv
                 << "): loopback job runs without authentication; any local user can connect to its ports";
    return JobAuth{};
  }
  if (!Exists(path)) {
    if (rank == 0) {
      TESSERA_ASSIGN_OR_RETURN(wire::CurveKeys keys, wire::GenerateCurveKeys());
      Status st = wire::WriteCurveKeyFile(path, keys);
      // Another process may have won the race; its file is read below.
      if (!st.ok() && !Exists(path)) return st.WithContext("--auth_key_file");
      if (st.ok()) LOG(INFO) << "created job key file " << path << " (mode 0600)";
    } else {
      const Deadline deadline(wait);
      while (!Exists(path)) {
        if (deadline.Expired()) {
          return Status::TimedOut("node " + Hostname() + " cannot see --auth_key_file " + path + ", which rank 0 creates: "
                                  "put the key file on a file system every node shares with rank 0");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  auto auth = Keyed(mode == "curve" ? AuthMode::kCurve : AuthMode::kMac, path);
  if (!auth.ok()) return auth.status().WithContext("--auth_key_file");
  return auth;
}

Result<std::string> CreateLaunchKeyFile() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/tessera-job-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return Status::IOError("creating a job directory " + templ + ": " + std::strerror(errno));
  }
  const std::string path = templ + "/job.key";
  auto keys = wire::GenerateCurveKeys();
  Status st = keys.ok() ? wire::WriteCurveKeyFile(path, *keys) : keys.status();
  if (!st.ok()) {
    ::rmdir(templ.c_str());
    return st;
  }
  return path;
}

void RemoveLaunchKeyFile(const std::string& key_file) {
  ::unlink(key_file.c_str());
  const auto slash = key_file.rfind('/');
  if (slash != std::string::npos) ::rmdir(key_file.substr(0, slash).c_str());
}

}  // namespace tessera::launch
