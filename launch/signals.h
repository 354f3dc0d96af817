// Signals of a job process (docs/checkpoints.md, "Preemption"). No work happens in a
// signal handler: SIGINT, SIGTERM and SIGUSR1 are blocked in every thread and one
// watcher thread takes them with sigwait and calls back.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace tessera::launch {

// Blocks SIGINT, SIGTERM and SIGUSR1 in the calling thread; threads started afterwards
// inherit the mask. Call before any thread (ZeroMQ's included) is started.
void BlockJobSignals();

class SignalWatcher {
 public:
  // on_signal(sig, n): n counts the SIGTERM/SIGUSR1 received so far (1 for the first);
  // SIGINT comes with n = 0. Runs on the watcher thread.
  explicit SignalWatcher(std::function<void(int sig, int n)> on_signal);
  ~SignalWatcher();  // stops and joins the watcher
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::function<void(int, int)> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tessera::launch
