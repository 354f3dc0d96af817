// The per-process timeline files of a job (docs/observability.md, "Timeline"): their
// names and their merge into one Chrome trace. Plain file I/O on the caller's thread.
// Shared by `tessera launch` (merges once the job has ended) and `tessera report
// --timeline` (jobs started by mpirun or srun), so it sits below both.
#pragma once

#include <string>

#include "common/status.h"

namespace tessera::observe {

// "run/trace.json" + "worker1" -> "run/trace.worker1.json" (a missing ".json" is added).
std::string TimelineProcessPath(const std::string& flag, const std::string& role);

// Merges the per-process files of `flag` (server0.., worker0.., as many as exist) into
// `flag` itself. *merged gets the number of files read. NotFound when there is none;
// Corruption naming the file when one is not a trace.
Status MergeTimelines(const std::string& flag, int* merged);

// Removes the per-process files of `flag` left by an earlier job (the launcher does this
// before starting one, so a merge never mixes in a rank the new job does not have).
void RemoveTimelines(const std::string& flag);

}  // namespace tessera::observe
