// --timeline and `tessera report` on real jobs through `tessera launch` (coordinator,
// servers and workers as processes on loopback, MNIST subset): each server and worker
// writes a valid Chrome trace, the launcher merges them, the spans nest, their counts
// match the steps, and the report of the same run's metrics file renders.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "tests/observe/timeline_check.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::Named;
using testing::Trace;

constexpr int kSteps = 12;

std::string SmallJob() {
  return " --data=" + testing::SourceDir() + "/data/mnist --train_limit=2000 --test_limit=200 --hidden=32 "
         "--batch_size=32 --steps=" + std::to_string(kSteps) + " --log_every=0 --seed=1";
}

testing::CommandResult Launch(int servers, int workers, const std::string& flags) {
  return testing::RunCommand(testing::TesseraBinary() + " launch --servers " + std::to_string(servers) +
                                 " --workers " + std::to_string(workers) + " --grace_s 2 " + flags,
                             180);
}

// Every "step" span of `pid` holds exactly one of each of `children`, on its own thread.
void ExpectStepsContain(const Trace& t, int pid, const std::vector<std::string>& children) {
  const auto steps = Named(t, "step", pid);
  ASSERT_EQ(steps.size(), static_cast<size_t>(kSteps)) << "pid " << pid;
  std::set<int64_t> numbers;
  for (const auto* s : steps) numbers.insert(s->args.value("step", int64_t{-1}));
  EXPECT_EQ(numbers.size(), static_cast<size_t>(kSteps));
  EXPECT_EQ(*numbers.begin(), 0);
  EXPECT_EQ(*numbers.rbegin(), kSteps - 1);
  // Each step holds a child span and each child lies in a step; with as many children as
  // steps that is one per step. (Timestamps are whole microseconds: on a fast machine a
  // zero-length span where one step ends and the next begins lies in both, so "exactly
  // one per step" would be a statement about the clock, not the loop.)
  for (const std::string& child : children) {
    const auto spans = Named(t, child, pid);
    EXPECT_EQ(spans.size(), static_cast<size_t>(kSteps)) << child << " of pid " << pid;
    for (const auto* step : steps) {
      int inside = 0;
      for (const auto* c : spans) inside += step->Contains(*c);
      EXPECT_GE(inside, 1) << child << " in step " << step->args.dump() << " of pid " << pid;
    }
    for (const auto* c : spans) {
      bool in_a_step = false;
      for (const auto* step : steps) in_a_step |= step->Contains(*c);
      EXPECT_TRUE(in_a_step) << child << " at ts " << c->ts << " (dur " << c->dur << ") of pid " << pid
                             << " lies in no step";
    }
  }
}

TEST(TimelineJob, BspJobWritesNestedSpansPerProcessAndMergedReport) {
  testing::TempDir dir;
  const std::string trace = dir.path() + "/trace.json";
  const std::string metrics = dir.path() + "/metrics.jsonl";
  // Left by an earlier job with more workers: the launcher removes it before starting.
  std::ofstream(dir.path() + "/trace.worker7.json") << "{\"traceEvents\":[";
  auto r = Launch(2, 2, SmallJob() + " --sync=bsp --eval_every=4 --timeline=" + trace + " --metrics_out=" + metrics +
                            " --checkpoint_dir=" + dir.path() + "/ckpt --checkpoint_every_steps=5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("timeline of 4 processes in " + trace), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/trace.worker7.json"));
  // Ranks: 0 coordinator (no file), 1-2 servers, 3-4 workers.
  for (const char* role : {"server0", "server1", "worker0", "worker1"}) {
    const std::string path = dir.path() + "/trace." + role + ".json";
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    Trace t = testing::LoadTrace(path);
    testing::ExpectProperNesting(t);
    ASSERT_EQ(t.process_names.size(), 1u) << path;
  }
  Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  EXPECT_EQ(t.process_names.size(), 4u);
  EXPECT_EQ(t.process_names[3], "worker 0 (rank 3)");
  EXPECT_EQ(t.process_names[2], "server 1 (rank 2)");
  for (int worker_pid : {3, 4}) {
    ExpectStepsContain(t, worker_pid, {"data", "forward", "backward", "issue", "push", "pull", "report"});
    EXPECT_EQ(Named(t, "barrier", worker_pid).size(), 1u);
    // Nothing is all-reduced in bsp.
    EXPECT_EQ(Named(t, "grad_sync", worker_pid).size(), 0u);
    EXPECT_EQ(Named(t, "allreduce", worker_pid).size(), 0u);
    EXPECT_EQ(Named(t, "setup", worker_pid).size(), 1u);
    // Checkpoints every 5 steps: each worker answers the prepares.
    EXPECT_GE(Named(t, "checkpoint prepare", worker_pid).size(), 1u);
  }
  // Worker 0 evaluates after steps 4 and 8, then the final evaluation.
  EXPECT_EQ(Named(t, "eval", 3).size(), 2u);
  EXPECT_EQ(Named(t, "final eval", 3).size(), 1u);
  EXPECT_EQ(Named(t, "eval", 4).size(), 0u);
  for (int server_pid : {1, 2}) {
    // bsp: every chunk this server owns is updated once per step, inside the push that
    // completed the step.
    const auto opt = Named(t, "optimizer", server_pid);
    ASSERT_FALSE(opt.empty()) << "server pid " << server_pid;
    EXPECT_EQ(opt.size() % kSteps, 0u) << opt.size();
    std::set<int64_t> steps;
    for (const auto* o : opt) {
      steps.insert(o->args.value("step", int64_t{-1}));
      int pushes = 0;
      for (const auto* p : Named(t, "push", server_pid)) pushes += p->Contains(*o);
      EXPECT_EQ(pushes, 1);
    }
    EXPECT_EQ(steps.size(), static_cast<size_t>(kSteps));
    // 2 workers push every chunk every step.
    EXPECT_EQ(Named(t, "push", server_pid).size(), 2 * opt.size());
    EXPECT_GE(Named(t, "checkpoint snapshot", server_pid).size(), 1u);
    EXPECT_GE(Named(t, "checkpoint write", server_pid).size(), 1u);
  }
  std::set<std::string> server_threads;
  for (const auto& [key, name] : t.thread_names) {
    if (key.first == 1) server_threads.insert(name);
  }
  EXPECT_TRUE(server_threads.count("server reactor")) << "thread names";
  EXPECT_TRUE(server_threads.count("checkpoint writer")) << "thread names";

  // The report of the same run.
  const std::string out = dir.path() + "/report";
  auto rep = testing::RunCommand(testing::TesseraBinary() + " report " + metrics + " -o " + out);
  ASSERT_EQ(rep.exit_code, 0) << rep.output;
  for (const char* f : {"loss.svg", "accuracy.svg", "throughput.svg", "index.html"}) {
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  }
  std::ifstream in(out + "/loss.svg");
  std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t polyline = svg.find("points=\"");
  ASSERT_NE(polyline, std::string::npos);
  const std::string pts = svg.substr(polyline + 8, svg.find('"', polyline + 8) - polyline - 8);
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), kSteps) << "one point per step line";
}

TEST(TimelineJob, AllReduceWorkersRecordBucketsAndTheirOptimizer) {
  testing::TempDir dir;
  const std::string trace = dir.path() + "/ar.json";
  // --bucket_mb=0: one all-reduce per tensor (fc1 and fc2 weight and bias) per step.
  auto r = Launch(1, 2, SmallJob() + " --sync=allreduce --bucket_mb=0 --timeline=" + trace);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  for (int pid : {2, 3}) {
    ExpectStepsContain(t, pid, {"forward", "backward", "grad_sync", "allreduce wait", "optimizer"});
    const auto buckets = Named(t, "allreduce", pid);
    EXPECT_EQ(buckets.size(), 4u * kSteps) << "pid " << pid;
    for (const auto* b : buckets) {
      EXPECT_GT(b->args.value("bytes", int64_t{0}), 0);
      EXPECT_EQ(t.thread_names[std::make_pair(pid, b->tid)], "mpi comm");
    }
  }
}

}  // namespace
}  // namespace tessera
