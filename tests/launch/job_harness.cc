#include "tests/launch/job_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace tessera::testing {

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// NUL-separated environment of `pid` ("" when it is gone or not ours to read).
std::string EnvironOf(const std::string& pid) { return ReadFile("/proc/" + pid + "/environ"); }

bool HasEntry(const std::string& environ, const std::string& entry) {
  size_t p = 0;
  while (p < environ.size()) {
    size_t e = environ.find('\0', p);
    if (e == std::string::npos) e = environ.size();
    if (environ.compare(p, e - p, entry) == 0) return true;
    p = e + 1;
  }
  return false;
}

bool IsZombie(const std::string& pid) {
  std::string stat = ReadFile("/proc/" + pid + "/stat");
  size_t rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] == 'Z';
}

template <typename F>
void ForEachMarked(const std::string& marker, F f) {
  const std::string entry = "TESSERA_TEST_MARKER=" + marker;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = EnvironOf(name);
    if (!HasEntry(env, entry) || IsZombie(name)) continue;
    f(name, env);
  }
}

}  // namespace

BackgroundJob::BackgroundJob(const std::string& command) : start_(std::chrono::steady_clock::now()) {
  std::random_device rd;
  marker_ = std::to_string(getpid()) + "-" + std::to_string(rd());
  const char* base = getenv("TMPDIR");
  log_path_ = std::string(base && *base ? base : "/tmp") + "/tessera-job-" + marker_ + ".log";
  pid_ = fork();
  if (pid_ == 0) {
    setsid();  // one session: the destructor can kill everything the job started
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    setenv("TESSERA_TEST_MARKER", marker_.c_str(), 1);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
}

BackgroundJob::~BackgroundJob() {
  if (pid_ > 0 && exit_code_ < 0) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  ForEachMarked(marker_, [](const std::string& pid, const std::string&) { kill(std::stoi(pid), SIGKILL); });
  std::remove(log_path_.c_str());
}

std::string BackgroundJob::Output() const { return ReadFile(log_path_); }

bool BackgroundJob::WaitForOutput(const std::string& text, std::chrono::seconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Output().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

pid_t BackgroundJob::FindRankPid(const std::string& var, const std::string& value, const std::string& exe_substr) const {
  pid_t found = -1;
  ForEachMarked(marker_, [&](const std::string& pid, const std::string& env) {
    if (found > 0 || !HasEntry(env, var + "=" + value)) return;
    std::string cmdline = ReadFile("/proc/" + pid + "/cmdline");
    std::vector<std::string> argv;
    for (size_t p = 0; p < cmdline.size();) {
      size_t e = cmdline.find('\0', p);
      if (e == std::string::npos) e = cmdline.size();
      argv.push_back(cmdline.substr(p, e - p));
      p = e + 1;
    }
    if (argv.size() < 2 || argv[0].find(exe_substr) == std::string::npos) return;
    // A launcher that inherited the variable is not the rank.
    if (argv[1] == "launch") return;
    found = std::stoi(pid);
  });
  return found;
}

int BackgroundJob::Wait(std::chrono::seconds timeout) {
  if (exit_code_ >= 0) return exit_code_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

double BackgroundJob::ElapsedS() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

int CountMarkedProcesses(const std::string& marker) {
  int n = 0;
  ForEachMarked(marker, [&n](const std::string&, const std::string&) { ++n; });
  return n;
}

std::string SummaryField(const std::string& output, const std::string& key) {
  size_t s = output.rfind("summary: {");
  if (s == std::string::npos) return "";
  size_t k = output.find("\"" + key + "\":", s);
  if (k == std::string::npos) return "";
  k += key.size() + 3;
  std::string v = output.substr(k, output.find_first_of(",}", k) - k);
  if (!v.empty() && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace tessera::testing
