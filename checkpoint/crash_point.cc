#include "checkpoint/crash_point.h"

#include <glog/logging.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace tessera::checkpoint {
namespace {

struct Target {
  std::string name;  // empty: no crash point armed
  int nth = 1;
  int ms = 0;  // TESSERA_DELAY_AT only
};

Target Parse(const char* v) {
  Target r;
  if (v == nullptr || *v == '\0') return r;
  std::string s(v);
  auto colon = s.find(':');
  r.name = s.substr(0, colon);
  if (colon == std::string::npos) return r;
  r.nth = std::max(1, std::atoi(s.c_str() + colon + 1));
  auto second = s.find(':', colon + 1);
  if (second != std::string::npos) r.ms = std::max(0, std::atoi(s.c_str() + second + 1));
  return r;
}

// One armed point per variable (see crash_point.h), read once.
struct Armed {
  explicit Armed(const char* variable) : target(Parse(std::getenv(variable))) {}
  // True the n-th time `name` passes here, when it is the armed one.
  bool Hit(const char* name) {
    if (target.name.empty() || target.name != name) return false;
    return hits.fetch_add(1) + 1 == target.nth;
  }
  const Target target;
  std::atomic<int> hits{0};
};

Armed& Crash() {
  static Armed a("TESSERA_CRASH_AT");
  return a;
}
Armed& Failure() {
  static Armed a("TESSERA_FAIL_AT");
  return a;
}
Armed& Delay() {
  static Armed a("TESSERA_DELAY_AT");
  return a;
}

}  // namespace

void CrashPoint(const char* name) {
  if (!Crash().Hit(name)) return;
  LOG(ERROR) << "TESSERA_CRASH_AT: crashing at " << name << " (pid " << getpid() << ")";
  google::FlushLogFiles(google::GLOG_INFO);
  raise(SIGKILL);
}

bool FailPoint(const char* name) {
  if (!Failure().Hit(name)) return false;
  LOG(ERROR) << "TESSERA_FAIL_AT: failing at " << name << " (pid " << getpid() << ")";
  return true;
}

void DelayPoint(const char* name) {
  Armed& d = Delay();
  if (!d.Hit(name)) return;
  LOG(WARNING) << "TESSERA_DELAY_AT: sleeping " << d.target.ms << " ms at " << name << " (pid " << getpid() << ")";
  std::this_thread::sleep_for(std::chrono::milliseconds(d.target.ms));
}

}  // namespace tessera::checkpoint
