// Child processes for the wire process tests (shm_process_test, link_process_test):
// spawn a peer binary, read its stdout lines, reap it with a deadline.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

extern char** environ;

namespace tessera::wire::testing {

// Spawns the peer binary `path` with `args`; its stdout goes to *out_fd (a pipe) when
// out_fd is set. -1 when it could not be started.
inline pid_t SpawnPeer(const std::string& path, const std::vector<std::string>& args, int* out_fd = nullptr) {
  std::vector<std::string> all = {path};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  int p[2] = {-1, -1};
  if (out_fd != nullptr) {
    if (pipe(p) != 0) return -1;
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
  }
  pid_t pid = -1;
  if (posix_spawn(&pid, all[0].c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  if (out_fd != nullptr) {
    close(p[1]);
    *out_fd = p[0];
  }
  return pid;
}

// Reads one line from `fd` (blocking; the peer writes it at once).
inline std::string ReadLine(int fd) {
  std::string s;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') s += c;
  return s;
}

// Waits up to `ms` for `pid`; kills it when it overstays. Returns the wait status or -1.
inline int WaitChild(pid_t pid, int ms) {
  Deadline d = Deadline::FromMillis(ms);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    if (d.Expired()) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace tessera::wire::testing
