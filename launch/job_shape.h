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

// The threads a server runs its large sparse pulls and pushes on (ServerOptions::threads)
// for --server_threads=`flag`: 1 or 2 as given; 0 (auto) gives 2 when every server and
// worker of the job runs on this host (!spans_hosts) and they number at most `cores` (the
// CPUs this process may run on), else 1. Why "at most" and not "fewer": a server's helper
// runs only while its reactor serves a batch, which a worker waits for, so at one core per
// process it takes the core of a waiting worker (1x1 on 2 cores: 1.14-1.18x,
// docs/benchmarks-sparse-threads.md); with more processes than cores it takes a core
// another process needs (2x2 on 2 cores: 0.96x). Across hosts the per-host count is not
// known here, so auto stays at 1 there. Errors: flag outside 0..2.
Result<int> ResolveServerThreads(int flag, const JobShape& shape, bool spans_hosts, int cores);

}  // namespace tessera::launch
