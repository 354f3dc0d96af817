#include "launch/signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace tessera::launch {
namespace {

int g_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  ssize_t n = write(g_pipe[1], &b, 1);  // a full pipe drops the byte: signals are plenty then
  (void)n;
  errno = saved;
}

}  // namespace

void InstallJobSignalHandlers() {
  if (g_pipe[0] >= 0) return;
  if (pipe2(g_pipe, O_CLOEXEC) != 0) return;
  fcntl(g_pipe[1], F_SETFL, O_NONBLOCK);
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

SignalWatcher::SignalWatcher(std::function<void(int, int)> on_signal) : on_signal_(std::move(on_signal)) {
  InstallJobSignalHandlers();
  thread_ = std::thread([this] {
    int preempts = 0;
    for (;;) {
      unsigned char b = 0;
      ssize_t n = read(g_pipe[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n != 1 || b == 0) return;  // 0: the destructor's wake-up
      const int sig = b;
      on_signal_(sig, sig == SIGINT ? 0 : ++preempts);
    }
  });
}

SignalWatcher::~SignalWatcher() {
  const unsigned char stop = 0;
  ssize_t n = write(g_pipe[1], &stop, 1);
  (void)n;
  thread_.join();
}

}  // namespace tessera::launch
