// Signals of a job process (docs/checkpoints.md, "Preemption"). The handler for SIGINT,
// SIGTERM and SIGUSR1 only writes the signal's number to a pipe (async-signal-safe);
// a watcher thread reads it and calls back, so no work ever happens in a handler and it
// does not matter which thread (ours, ZeroMQ's, OpenBLAS's) the kernel picked.
#pragma once

#include <functional>
#include <thread>

namespace tessera::launch {

class SignalWatcher {
 public:
  // Installs the handlers (for the process) and starts the watcher. on_signal(sig, n): n
  // counts the SIGTERM/SIGUSR1 received so far (1 for the first); SIGINT comes with
  // n = 0. Runs on the watcher thread. One watcher per process.
  explicit SignalWatcher(std::function<void(int sig, int n)> on_signal);
  ~SignalWatcher();  // stops and joins the watcher; the handlers stay (they only write the pipe)
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::function<void(int, int)> on_signal_;
  std::thread thread_;
};

// Installs the handlers without a watcher yet: signals that arrive before the watcher
// starts are kept in the pipe and delivered to it. Call first thing in a job process.
void InstallJobSignalHandlers();

}  // namespace tessera::launch
