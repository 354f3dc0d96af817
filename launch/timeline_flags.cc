#include "launch/timeline_flags.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstring>

#include "common/timeline.h"

DEFINE_string(timeline, "",
              "Write a Chrome trace of every server's and worker's spans (FILE.server0.json, FILE.worker0.json, ...; "
              "tessera launch merges them into FILE) (\"\" = off)");

namespace tessera::launch {

std::string TimelineFlag() { return FLAGS_timeline; }

TimelineRecording::~TimelineRecording() { timeline::Stop(); }

Status TimelineRecording::Start(int rank, int servers) {
  if (FLAGS_timeline.empty() || rank == 0) return Status::OK();
  const bool server = rank <= servers;
  const int index = server ? rank - 1 : rank - 1 - servers;
  const std::string role = (server ? "server" : "worker") + std::to_string(index);
  timeline::Options o;
  o.path = observe::TimelineProcessPath(FLAGS_timeline, role);
  o.pid = rank;
  o.process_name = (server ? "server " : "worker ") + std::to_string(index) + " (rank " + std::to_string(rank) + ")";
  // Workers first: their steps are what one reads first.
  o.sort_index = server ? 1000 + index : index;
  TESSERA_RETURN_IF_ERROR(timeline::Start(o));
  timeline::SetThreadName("main");
  LOG(INFO) << "recording the timeline into " << o.path;
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
