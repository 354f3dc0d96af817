// `tessera launch`: starts a whole job as local processes on this machine.
//
// Rank 0 is the coordinator, ranks 1..S the servers, the rest the workers; each child
// runs `tessera <subcommand> <job args> --servers=S --workers=W` with its rank in the
// environment (TESSERA_RANK, TESSERA_WORLD_SIZE, TESSERA_COORDINATOR_HOST/PORT,
// TESSERA_JOB_ID; rank 0 also TESSERA_COORDINATOR_FD, the coordinator's listening socket,
// bound by the launcher to the port the others are told). Every line a child prints is prefixed with its role and rank.
// SIGINT/SIGTERM/SIGUSR1 are forwarded to every child (a second SIGINT/SIGTERM kills
// them). When a child fails, the others get SIGTERM, then SIGKILL after the grace
// period, and the launcher exits non-zero naming the failed process. Children die with
// the launcher (PR_SET_PDEATHSIG), so a killed launcher leaves no orphans.
// With --sync=allreduce|hybrid in the job args, the workers are one `mpirun -np W` child
// (see LocalLaunchOptions::mpi_workers), whose lines carry the prefix "[workers]".
//
// Threading: single-threaded; signal handlers only write to a self-pipe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tessera::launch {

struct LocalLaunchOptions {
  int servers = 1;                    // Default: 1
  int workers = 1;                    // Default: 1
  std::string subcommand = "train";   // what each child runs. Default: train ("" with a program)
  std::vector<std::string> job_args;  // passed to every child unchanged
  std::string program;                // binary to start; "" means this tessera binary
  int grace_s = 10;                   // SIGTERM -> SIGKILL delay when stopping. Default: 10
  // 0: the launcher binds a free loopback port and hands the listening socket to the
  // coordinator (TESSERA_COORDINATOR_FD), so the port is held from the start. Default: 0
  int coordinator_port = 0;
  // Restarts of the whole job after a failure (exit code other than 0, 2 and 75, and
  // not stopped by a signal to the launcher). Each run gets TESSERA_RESTART_COUNT and a
  // fresh port; `tessera train` resumes from the newest complete checkpoint. Default: 0
  int max_restarts = 0;
  // The job args say --sync=allreduce|hybrid: with W > 1, the workers are started as one
  // `mpirun -np W` child (they need one MPI world), named "workers". Default: false.
  bool mpi_workers = false;
  std::string mpirun = "mpirun";      // --mpirun. Default: mpirun from PATH
};

// What one child of a run is started as (for RunLocalJob and its tests).
struct ChildRun {
  int world = 0;
  int port = 0;               // the coordinator's
  uint64_t job_id = 0;
  int restart = 0;
  std::string key_file;       // "" without CURVE
  std::string program;        // the binary every child runs
  int listen_fd = -1;         // the coordinator's listening socket (handed to rank 0), or -1
};
struct ChildCommand {
  std::string name;              // "coordinator", "server 0", "worker 1", or "workers" (the mpirun child)
  std::string exe;               // program, or mpirun
  std::vector<std::string> args;
  std::vector<std::string> env;  // added to the launcher's
  int inherit_fd = -1;           // kept open across exec (rank 0: the listening socket)
};
// Child r of a run: rank r, or with mpi_workers (and W > 1) child S+1 is `mpirun -np W`.
ChildCommand ChildCommandFor(const LocalLaunchOptions& options, const ChildRun& run, int r);

// Runs the job to completion (restarting it up to max_restarts times). Returns the exit
// code for the launcher process: 0 when every child exited 0; else the first failing
// child's code of the last run (128+signal when it was killed).
int RunLocalJob(const LocalLaunchOptions& options);

// Parses `tessera launch` arguments: launcher flags (--servers, --workers, --grace_s,
// --coordinator_port, --max_restarts, --program, --subcommand) anywhere before an optional "--";
// everything else is handed to the children.
Result<LocalLaunchOptions> ParseLaunchArgs(int argc, char** argv);

// Entry point of `tessera launch`.
int LaunchMain(int argc, char** argv);

// What `tessera launch --help` prints: the launcher's own flags (they are not gflags;
// docs/configuration.md quotes this text).
const char* LaunchHelpText();

}  // namespace tessera::launch
