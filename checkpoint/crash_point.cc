#include "checkpoint/crash_point.h"

#include <glog/logging.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace tessera::checkpoint {
namespace {

struct Target {
  std::string name;  // empty: no crash point armed
  int nth = 1;
};

const Target& Armed() {
  static const Target t = [] {
    Target r;
    const char* v = std::getenv("TESSERA_CRASH_AT");  // test-only; see crash_point.h
    if (v == nullptr || *v == '\0') return r;
    std::string s(v);
    auto colon = s.find(':');
    r.name = s.substr(0, colon);
    if (colon != std::string::npos) r.nth = std::max(1, std::atoi(s.c_str() + colon + 1));
    return r;
  }();
  return t;
}

std::atomic<int> g_hits{0};

}  // namespace

void CrashPoint(const char* name) {
  const Target& t = Armed();
  if (t.name.empty() || t.name != name) return;
  if (g_hits.fetch_add(1) + 1 != t.nth) return;
  LOG(ERROR) << "TESSERA_CRASH_AT: crashing at " << name << " (pid " << getpid() << ")";
  google::FlushLogFiles(google::GLOG_INFO);
  raise(SIGKILL);
}

}  // namespace tessera::checkpoint
