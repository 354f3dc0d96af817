// Drives a real multi-process job from a test: starts a shell command in the
// background (its own session, output to a file), waits for output to appear, finds
// the pid of one rank by the environment its launcher gave it, sends real signals,
// and collects the exit code with a deadline.
//
// Threading: a BackgroundJob belongs to the test's thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace tessera::testing {

class BackgroundJob {
 public:
  // Runs `sh -c command` with TESSERA_TEST_MARKER=<unique> added to its environment
  // (so FindRankPid finds only this job's processes).
  explicit BackgroundJob(const std::string& command);
  ~BackgroundJob();  // kills whatever is left of the session
  BackgroundJob(const BackgroundJob&) = delete;
  BackgroundJob& operator=(const BackgroundJob&) = delete;

  const std::string& marker() const { return marker_; }
  // Everything printed so far.
  std::string Output() const;
  // True once `text` appears in the output (false after `timeout`).
  bool WaitForOutput(const std::string& text, std::chrono::seconds timeout) const;
  // Pid of the process of this job whose environment has `var`=`value` (e.g.
  // TESSERA_RANK=3 or OMPI_COMM_WORLD_RANK=3) and runs `exe_substr`; -1 when none.
  pid_t FindRankPid(const std::string& var, const std::string& value, const std::string& exe_substr = "tessera") const;
  // Waits for the shell to exit; its exit code, or -1 after `timeout` (job left running).
  int Wait(std::chrono::seconds timeout);
  // Seconds since Start.
  double ElapsedS() const;

 private:
  std::string marker_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// Number of live processes (not zombies) whose environment holds TESSERA_TEST_MARKER=marker.
int CountMarkedProcesses(const std::string& marker);

// mpirun as root on this machine: the two OMPI_ALLOW_* variables, shared memory only, no
// binding (2 cores, 5 ranks), the test marker forwarded. Never in the binary: tests only.
inline const std::string kMpirunAsRoot =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe --mca btl self,vader "
    "--bind-to none -x TESSERA_TEST_MARKER";

// A field of the last "summary: {...}" line of a job's output, unquoted ("" when missing).
std::string SummaryField(const std::string& output, const std::string& key);

}  // namespace tessera::testing
