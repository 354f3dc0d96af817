// Helpers for the tests that run real checkpointed jobs through `tessera launch`
// (resume_job_test.cc for the MLP, sparse_resume_job_test.cc for the sparse models):
// running a job and reading worker 0's metrics file, the final params_digest and the
// per-step losses, listing the step directories, `tessera ckpt`, and a job in the
// background whose processes the test can signal.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera::ckpt_testing {

using testing::JobRun;
using testing::ReadLines;

inline std::string Field(const std::string& json, const std::string& key) { return testing::JsonField(json, key); }

// The widedeep job of the sparse checkpoint tests (a9a subset, --deterministic) under
// `sync`, plus `flags`.
inline std::string WideDeepFlags(const std::string& sync, const std::string& flags) {
  return "--model=widedeep --data=" + testing::SourceDir() +
         "/data/a9a --train_limit=4000 --test_limit=1000 --batch_size=32 --optimizer=adagrad --lr=0.03 "
         "--hidden=8 --embed_dim=4 --log_every=0 --seed=5 --deterministic --sync=" + sync + " " + flags;
}

// `tessera launch` with `flags` (which hold every job flag, --data included).
inline std::string LaunchCommand(const std::string& flags, const std::string& metrics, int servers,
                                 int workers = 2) {
  return testing::LaunchCommand(flags, metrics, servers, workers, 1);
}

// Runs a job to its end (`env` is prepended, e.g. "TESSERA_CRASH_AT=after_commit").
inline JobRun RunJob(const testing::TempDir& tmp, const std::string& flags, int servers, const std::string& env = "") {
  static int n = 0;
  const std::string metrics = tmp.path() + "/metrics-" + std::to_string(++n) + ".jsonl";
  return testing::RunJobCommand(env + " " + LaunchCommand(flags, metrics, servers), metrics, 120);
}

inline std::string Summary(const JobRun& r) {
  for (const auto& l : r.metrics) {
    if (Field(l, "event") == "summary") return l;
  }
  return "";
}

inline std::string Digest(const JobRun& r) { return Field(Summary(r), "params_digest"); }

// (step, loss as written, 17 digits) of every step line.
inline std::vector<std::pair<int, std::string>> Losses(const JobRun& r) {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& l : r.metrics) {
    if (Field(l, "event") == "step") out.emplace_back(std::stoi(Field(l, "step")), Field(l, "loss"));
  }
  return out;
}

// Every step line of `tail` must carry the loss `full` has for that step, and `tail`
// must cover exactly steps [first, last].
inline void ExpectSameLosses(const JobRun& full, const JobRun& tail, int first, int last) {
  auto all = Losses(full), part = Losses(tail);
  ASSERT_EQ(part.size(), static_cast<size_t>(last - first + 1));
  ASSERT_GE(all.size(), static_cast<size_t>(last + 1));
  for (const auto& [step, loss] : part) {
    ASSERT_GE(step, first);
    ASSERT_LE(step, last);
    EXPECT_EQ(loss, all[static_cast<size_t>(step)].second) << "loss of step " << step;
  }
}

// Step directories of a checkpoint directory, with and without a MANIFEST.
struct Listing {
  std::vector<int> complete, incomplete;
};
inline Listing List(const std::string& dir) {
  namespace fs = std::filesystem;
  Listing out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) != 0) continue;
    (fs::exists(e.path() / "MANIFEST") ? out.complete : out.incomplete).push_back(std::stoi(name.substr(5)));
  }
  std::sort(out.complete.begin(), out.complete.end());
  std::sort(out.incomplete.begin(), out.incomplete.end());
  return out;
}

// `tessera ckpt ARGS`; returns its exit code.
inline int Tool(const std::string& args, std::string* output = nullptr) {
  auto r = testing::RunCommand(testing::TesseraBinary() + " ckpt " + args, 60);
  if (output != nullptr) *output = r.output;
  return r.exit_code;
}

// Starts a job in the background; its launcher's pid is in pid_file.
class BackgroundJob {
 public:
  BackgroundJob(const testing::TempDir& tmp, const std::string& flags, int servers = 2) {
    metrics_ = tmp.path() + "/bg-metrics.jsonl";
    const std::string pid_file = tmp.path() + "/launcher.pid";
    thread_ = std::thread([this, flags, pid_file, servers] {
      result_ = testing::RunCommand("echo $$ > " + pid_file + "; exec " + LaunchCommand(flags, metrics_, servers), 180);
    });
    for (int i = 0; i < 200 && pid_ <= 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::ifstream in(pid_file);
      in >> pid_;
    }
  }
  ~BackgroundJob() {
    if (thread_.joinable()) thread_.join();
  }
  BackgroundJob(const BackgroundJob&) = delete;
  BackgroundJob& operator=(const BackgroundJob&) = delete;
  // Waits until worker 0 has logged `steps` steps.
  bool WaitForSteps(size_t steps) {
    for (int i = 0; i < 600; ++i) {
      size_t n = 0;
      for (const auto& l : ReadLines(metrics_)) n += Field(l, "event") == "step";
      if (n >= steps) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // Pid of the launcher's child with TESSERA_RANK=rank.
  pid_t Child(int rank) const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children");
    for (pid_t c; in >> c;) {
      std::ifstream env("/proc/" + std::to_string(c) + "/environ");
      std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
      if (all.find("TESSERA_RANK=" + std::to_string(rank) + '\0') != std::string::npos) return c;
    }
    return -1;
  }
  JobRun Finish() {
    thread_.join();
    return {result_.exit_code, result_.output, ReadLines(metrics_)};
  }
  pid_t pid() const { return pid_; }

 private:
  std::string metrics_;
  pid_t pid_ = -1;
  std::thread thread_;
  testing::CommandResult result_;
};

}  // namespace tessera::ckpt_testing
