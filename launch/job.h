// One process of a Tessera job: decides its role from its rank (0 coordinator, 1..S
// servers, the rest workers), runs it, and turns the outcome into an exit code.
//
// The job flags (--servers, --workers, --sync, --heartbeat_timeout_s, ...) are defined
// in job.cc; every binary that runs a job (tessera train, the examples, test peers)
// links this and calls RunJobProcess from main after InitProcess.
//
// Threading: RunJobProcess runs on the main thread; each role starts its own reactor
// thread; the worker function runs on the main thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "collective/communicator.h"
#include "common/status.h"
#include "launch/env.h"
#include "worker/client.h"

namespace tessera::launch {

// What a worker's training function gets.
struct WorkerContext {
  worker::Client* client = nullptr;  // registered; DeclareParams not yet called
  int worker_index = 0;              // 0..num_workers-1
  int num_workers = 1;
  int num_servers = 1;
  LaunchInfo launch;
  // --sync=allreduce|hybrid: the workers-only communicator (docs/collective.md); null
  // otherwise, and with a single worker outside an MPI world.
  collective::Communicator* comm = nullptr;
  // --device, resolved for this worker (launch/device_placement.h); the CUDA device, when
  // chosen, is already current on the calling thread.
  Device device = Device::kCPU;
};

// Runs the worker's work. Returning a non-OK Status fails the job (exit code from the
// status code unless the job was already stopping).
using WorkerMain = std::function<Status(WorkerContext&)>;

// Runs this process's role in the job described by the flags and the launcher
// environment. Returns the process exit code (common/exit_codes.h).
int RunJobProcess(const WorkerMain& worker_main);

// The job's sync policy flag (--sync), for code that needs it outside the servers.
std::string SyncFlag();

}  // namespace tessera::launch
