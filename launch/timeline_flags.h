// --timeline (docs/observability.md, "Timeline"): every server and worker of a job
// records its spans (common/timeline.h) into its own file next to the flag's path,
//   --timeline=run/trace.json  ->  run/trace.server0.json, run/trace.worker1.json, ...
// and `tessera launch` merges them into run/trace.json once the job has ended (jobs
// started by mpirun or srun merge with `tessera report --timeline=run/trace.json`, or
// open the per-process files one by one). One file per process keeps the recording
// free of cross-process coordination and lets a crashed process's file stand alone.
//
// Threads: TimelineRecording is used by the process's main thread (launch/job.cc); the
// merge (observe/timeline_files.h) is plain file I/O on the caller's thread.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "observe/timeline_files.h"

namespace tessera::launch {

// The value of --timeline ("" = off).
std::string TimelineFlag();

// Records this process's spans while it lives, when --timeline is set.
class TimelineRecording {
 public:
  TimelineRecording() = default;
  ~TimelineRecording();
  TimelineRecording(const TimelineRecording&) = delete;
  TimelineRecording& operator=(const TimelineRecording&) = delete;

  // Starts recording for the process of `rank` in a job with `servers` servers (rank 0,
  // the coordinator, records nothing). InvalidArgument naming --timeline when its file
  // cannot be written.
  Status Start(int rank, int servers);
};

// The file names and the merge live in observe/ (shared with `tessera report`); the
// launcher keeps calling them by these names.
using observe::MergeTimelines;
using observe::RemoveTimelines;
using observe::TimelineProcessPath;

// The --timeline value among `tessera launch`'s job args ("" when absent).
std::string TimelineFromArgs(const std::vector<std::string>& args);

}  // namespace tessera::launch
