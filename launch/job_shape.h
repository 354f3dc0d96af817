// How many servers and workers a job has, from the launcher's world size and the
// --servers/--workers flags (0: derived). Pure, so every rule has a unit test.
#pragma once

#include "common/status.h"

namespace tessera::launch {

struct JobShape {
  int servers = 0;
  int workers = 0;
};

// servers 0: (world - 1) / 2, at least 1; workers 0: the rest. Errors: negative flags, a
// process alone (world size 1), counts that do not add up to the world, no server or no
// worker; each names the numbers.
Result<JobShape> ResolveJobShape(int world_size, int servers_flag, int workers_flag);

}  // namespace tessera::launch
