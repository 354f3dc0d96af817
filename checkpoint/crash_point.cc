#include "checkpoint/crash_point.h"

#include <glog/logging.h>
#include <signal.h>
#include <unistd.h>

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

// Test-only variables; see crash_point.h.
const Target& Armed() {
  static const Target t = Parse(std::getenv("TESSERA_CRASH_AT"));
  return t;
}
const Target& ArmedFailure() {
  static const Target t = Parse(std::getenv("TESSERA_FAIL_AT"));
  return t;
}

const Target& ArmedDelay() {
  static const Target t = Parse(std::getenv("TESSERA_DELAY_AT"));
  return t;
}

std::atomic<int> g_hits{0};
std::atomic<int> g_failure_hits{0};
std::atomic<int> g_delay_hits{0};

}  // namespace

void CrashPoint(const char* name) {
  const Target& t = Armed();
  if (t.name.empty() || t.name != name) return;
  if (g_hits.fetch_add(1) + 1 != t.nth) return;
  LOG(ERROR) << "TESSERA_CRASH_AT: crashing at " << name << " (pid " << getpid() << ")";
  google::FlushLogFiles(google::GLOG_INFO);
  raise(SIGKILL);
}

bool FailPoint(const char* name) {
  const Target& t = ArmedFailure();
  if (t.name.empty() || t.name != name) return false;
  if (g_failure_hits.fetch_add(1) + 1 != t.nth) return false;
  LOG(ERROR) << "TESSERA_FAIL_AT: failing at " << name << " (pid " << getpid() << ")";
  return true;
}

void DelayPoint(const char* name) {
  const Target& t = ArmedDelay();
  if (t.name.empty() || t.name != name) return;
  if (g_delay_hits.fetch_add(1) + 1 != t.nth) return;
  LOG(WARNING) << "TESSERA_DELAY_AT: sleeping " << t.ms << " ms at " << name << " (pid " << getpid() << ")";
  std::this_thread::sleep_for(std::chrono::milliseconds(t.ms));
}

}  // namespace tessera::checkpoint
