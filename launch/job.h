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

// A worker rank that has joined its job (registered with the coordinator), for worker
// code that is not one function call: the Python package (python/, docs/python.md)
// returns to the user's script once tessera.init() joined. It holds everything
// RunJobProcess holds while worker_main runs (the ZeroMQ context, the client, MPI, the
// signal watcher, the timeline recording).
//
// Thread safety: context() may be used from any thread as the client allows; Finish is
// called once, by the thread that owns the JoinedWorker.
class JoinedWorker {
 public:
  struct State;  // defined in job.cc
  explicit JoinedWorker(std::unique_ptr<State> state);
  // Without Finish: finishes with kAborted ("the worker went away without finishing").
  ~JoinedWorker();
  JoinedWorker(const JoinedWorker&) = delete;
  JoinedWorker& operator=(const JoinedWorker&) = delete;

  WorkerContext& context();
  // Ends this worker's part as RunJobProcess does when worker_main returns `status`:
  // tells the coordinator (done, or failed with the reason) and returns the exit code for
  // the process (the coordinator's code when the job was already stopping). Later calls
  // return the first call's code.
  int Finish(const Status& status);

 private:
  std::unique_ptr<State> state_;
};

// What JoinJobProcess did.
struct JoinOutcome {
  // Set when this rank is a worker and joined; null otherwise.
  std::unique_ptr<JoinedWorker> worker;
  // Without a worker: the exit code of this process. Rank 0 and the server ranks run
  // their role to the end of the job inside JoinJobProcess; a failure to join (bad flags,
  // bad environment, the job stopped) is its code too.
  int exit_code = 0;
};

// RunJobProcess up to the point where worker_main would be called. Same flags, same
// environment, same logging.
JoinOutcome JoinJobProcess();

// The job's sync policy flag (--sync), for code that needs it outside the servers.
std::string SyncFlag();

}  // namespace tessera::launch
