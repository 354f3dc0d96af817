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

Result<JobAuth> Curve(const std::string& path) {
  if (!wire::CurveAvailable()) {
    return Status::FailedPrecondition("--auth=curve: this libzmq was built without CURVE (use --auth=none)");
  }
  TESSERA_ASSIGN_OR_RETURN(wire::CurveKeys keys, wire::ReadCurveKeyFile(path));
  return JobAuth{true, keys, path};
}

}  // namespace

Result<JobAuth> ResolveJobAuth(const std::string& mode, const std::string& key_file_flag, const EnvMap& env,
                               int rank, bool spans_hosts, Duration wait) {
  if (mode != "auto" && mode != "curve" && mode != "none") {
    return Status::InvalidArgument("--auth=" + mode + ": expected curve, none or auto");
  }
  if (mode == "none") {
    LOG(WARNING) << "--auth=none: the job's sockets are neither authenticated nor encrypted; anyone who can "
                    "reach its ports can join it or push updates";
    return JobAuth{};
  }
  std::string path = key_file_flag;
  if (path.empty()) {
    auto it = env.find(kAuthKeyFileEnv);
    if (it != env.end()) path = it->second;
  }
  if (path.empty()) {
    if (mode == "curve" || spans_hosts) {
      return Status::InvalidArgument(
          std::string(mode == "curve" ? "--auth=curve" : "this job spans hosts, so it") +
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
  auto auth = Curve(path);
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
