#include "common/logging.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <csignal>
#include <ctime>
#include <iomanip>

namespace tessera {

namespace {
std::string& Tag() {
  static std::string tag;
  return tag;
}

// glog 0.6 custom prefix: "I1125 15:01:05.123456 [worker 0] file.cc:12] message"
void PrefixFormatter(std::ostream& s, const google::LogMessageInfo& l, void*) {
  s << l.severity[0] << std::setw(2) << std::setfill('0') << 1 + l.time.month() << std::setw(2)
    << l.time.day() << ' ' << std::setw(2) << l.time.hour() << ':' << std::setw(2)
    << l.time.min() << ':' << std::setw(2) << l.time.sec() << '.' << std::setw(6)
    << l.time.usec() << std::setfill(' ');
  if (!Tag().empty()) s << " [" << Tag() << ']';
  s << ' ' << l.filename << ':' << l.line_number << ']';
}
}  // namespace

void InitProcess(int* argc, char*** argv, const std::string& usage) {
  gflags::SetUsageMessage(usage);
  gflags::SetVersionString(TESSERA_VERSION_STRING);
  gflags::ParseCommandLineFlags(argc, argv, /*remove_flags=*/true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging((*argv)[0], &PrefixFormatter, nullptr);
  google::InstallFailureSignalHandler();
  // SIGTERM is how launchers stop a job, not a crash: no stack trace for it.
  signal(SIGTERM, SIG_DFL);
}

void SetLogTag(const std::string& tag) { Tag() = tag; }
const std::string& LogTag() { return Tag(); }

}  // namespace tessera
