#include "launch/signals.h"

#include <pthread.h>
#include <signal.h>

namespace tessera::launch {
namespace {
sigset_t JobSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}
}  // namespace

void BlockJobSignals() {
  sigset_t set = JobSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWatcher::SignalWatcher(std::function<void(int, int)> on_signal) : on_signal_(std::move(on_signal)) {
  thread_ = std::thread([this] {
    const sigset_t set = JobSignals();
    int preempts = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (stop_.load()) return;
      if (sig == SIGINT) {
        on_signal_(sig, 0);
      } else {
        on_signal_(sig, ++preempts);
      }
    }
  });
}

SignalWatcher::~SignalWatcher() {
  stop_ = true;
  pthread_kill(thread_.native_handle(), SIGUSR1);  // wakes sigwait; it sees stop_
  thread_.join();
}

}  // namespace tessera::launch
