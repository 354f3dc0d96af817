// The sparse models' device path (worker/sparse/row_staging.h) on CPU machines: real
// jobs through `tessera launch` with --staging_on_cpu, which runs the staging code with
// the CPU as the device (pulled rows copied to the "device", gathers and the grouped
// scatter-add run as kernels there, row gradients copied back into pinned blocks and
// pushed from them). Each run must end with bitwise the params_digest of the plain host
// path (issue 19), and its copies must show in --timeline.
#include <gtest/gtest.h>

#include <string>

#include "tests/observe/timeline_check.h"
#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

constexpr int kSteps = 25;

std::string Steps(const std::string& sync = "bsp") {
  return " --steps=" + std::to_string(kSteps) + " --log_every=0 --deterministic --sync=" + sync;
}

std::string WideDeep(const std::string& sync = "bsp") {
  return "--model=widedeep --data=" + testing::SourceDir() +
         "/data/a9a --train_limit=3000 --test_limit=500 --batch_size=64 --optimizer=adagrad --lr=0.03 "
         "--hidden=16 --embed_dim=4 --seed=3" +
         Steps(sync);
}

std::string Word2Vec() {
  return "--model=word2vec --data=" + testing::SourceDir() +
         "/data/text8-head --train_limit=40000 --batch_size=128 --embed_dim=16 --window=3 --negatives=4 "
         "--min_count=5 --optimizer=adagrad --lr=0.2 --grad_reduce=sum --heldout_pairs=1000 --seed=4" +
         Steps();
}

std::string Dlrm(const std::string& data) {
  return "--model=dlrm --data=" + data +
         " --embed_dim=4 --bottom_mlp=8 --hidden=8 --batch_size=64 --optimizer=adagrad --lr=0.05 --seed=2" + Steps();
}

struct StagedRun {
  testing::JobRun job;
  std::string digest;
};

StagedRun Launch(const testing::TempDir& tmp, const std::string& flags, int servers, int workers) {
  static int n = 0;
  const std::string metrics = tmp.path() + "/metrics-" + std::to_string(n++) + ".jsonl";
  StagedRun r;
  r.job = testing::RunJobCommand(testing::LaunchCommand(flags, metrics, servers, workers, 2), metrics, 180);
  const auto summaries = testing::Events(r.job, "summary");
  if (summaries.size() == 1) r.digest = testing::JsonField(summaries[0], "params_digest");
  return r;
}

void ExpectSameDigest(const std::string& flags) {
  testing::TempDir tmp;
  const StagedRun host = Launch(tmp, flags + " --device=cpu", 2, 2);
  ASSERT_EQ(host.job.exit_code, 0) << host.job.output;
  const StagedRun staged = Launch(tmp, flags + " --device=cpu --staging_on_cpu", 2, 2);
  ASSERT_EQ(staged.job.exit_code, 0) << staged.job.output;
  EXPECT_NE(staged.job.output.find("(staged embedding rows"), std::string::npos) << staged.job.output;
  if (flags.find("--model=widedeep") != std::string::npos) {
    EXPECT_NE(staged.job.output.find("(staged embedding rows and MLP)"), std::string::npos) << staged.job.output;
  }
  EXPECT_EQ(host.job.output.find("(staged embedding rows"), std::string::npos) << host.job.output;
  ASSERT_EQ(host.digest.size(), 16u) << host.job.output;
  EXPECT_EQ(staged.digest, host.digest);
}

TEST(SparseStagingOnCpu, WideDeepDigestIsBitwiseTheHostPaths) { ExpectSameDigest(WideDeep()); }

// --sync=hybrid: the MLP all-reduced among the workers (mpirun), the tables staged.
TEST(SparseStagingOnCpu, HybridWideDeepDigestIsBitwiseTheHostPaths) { ExpectSameDigest(WideDeep("hybrid")); }

TEST(SparseStagingOnCpu, Word2VecDigestIsBitwiseTheHostPaths) { ExpectSameDigest(Word2Vec()); }

// dlrm's interaction runs on the device too: its copies per step are the bottom output
// out, the interactions back, their gradients out, the bottom's gradient back.
TEST(SparseStagingOnCpu, DlrmDigestIsBitwiseTheHostPathsAndInteractsOnTheDevice) {
  testing::TempDir data;
  auto gen = testing::RunCommand(
      testing::TesseraBinary() + " datagen criteo --rows 4000 --valid_rows 500 --seed 6 -o " + data.path() + "/criteo",
      120);
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  ExpectSameDigest(Dlrm(data.path() + "/criteo"));

  testing::TempDir tmp;
  const std::string trace = tmp.path() + "/trace.json";
  const StagedRun r = Launch(tmp, Dlrm(data.path() + "/criteo") + " --device=cpu --staging_on_cpu --timeline=" + trace, 1, 1);
  ASSERT_EQ(r.job.exit_code, 0) << r.job.output;
  testing::Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  const int worker = 2;
  const size_t steps = static_cast<size_t>(kSteps);
  for (const char* name : {"h2d rows", "h2d dense", "d2h pairs", "h2d pair grads", "d2h dense grads", "d2h row grads"}) {
    EXPECT_EQ(testing::Named(t, name, worker).size(), steps) << name;
  }
  EXPECT_EQ(testing::Named(t, "d2h gathered", worker).size(), 0u);
}

// One server, one worker: ranks 0 coordinator (no file), 1 server, 2 worker.
TEST(SparseStagingOnCpu, CopiesAppearInTheTimeline) {
  testing::TempDir tmp;
  const std::string trace = tmp.path() + "/trace.json";
  const StagedRun r = Launch(tmp, WideDeep() + " --device=cpu --staging_on_cpu --timeline=" + trace, 1, 1);
  ASSERT_EQ(r.job.exit_code, 0) << r.job.output;
  testing::Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  const int worker = 2;
  const size_t steps = static_cast<size_t>(kSteps);
  // widedeep has two tables (wide, deep): each step gathers and scatter-adds both.
  EXPECT_EQ(testing::Named(t, "h2d rows", worker).size(), steps);
  // Its MLP on the device: its 4 parameters after every pull (Setup's, each step's, the
  // final evaluation's), its input out and its output's gradient out per step (and per
  // evaluation batch), its output and its input's gradient back.
  EXPECT_EQ(testing::Named(t, "h2d params", worker).size(), 4 * (steps + 3));
  EXPECT_EQ(testing::Named(t, "d2h pooled grads", worker).size(), steps);
  EXPECT_EQ(testing::Named(t, "h2d ids", worker).size(), 2 * steps);
  EXPECT_EQ(testing::Named(t, "d2h gathered", worker).size(), 2 * steps);
  EXPECT_EQ(testing::Named(t, "h2d position grads", worker).size(), 2 * steps);
  EXPECT_EQ(testing::Named(t, "d2h row grads", worker).size(), 2 * steps);
}

// word2vec's dot products run on the device: per step, its scores come back and their
// gradients go out, once; no gathered rows come back.
TEST(SparseStagingOnCpu, Word2VecComputesOnTheDevice) {
  testing::TempDir tmp;
  const std::string trace = tmp.path() + "/trace.json";
  const StagedRun r = Launch(tmp, Word2Vec() + " --device=cpu --staging_on_cpu --timeline=" + trace, 1, 1);
  ASSERT_EQ(r.job.exit_code, 0) << r.job.output;
  testing::Trace t = testing::LoadTrace(trace);
  testing::ExpectProperNesting(t);
  const int worker = 2;
  const size_t steps = static_cast<size_t>(kSteps);
  EXPECT_EQ(testing::Named(t, "h2d rows", worker).size(), steps);
  EXPECT_EQ(testing::Named(t, "d2h scores", worker).size(), steps);
  EXPECT_EQ(testing::Named(t, "h2d score grads", worker).size(), steps);
  EXPECT_EQ(testing::Named(t, "d2h row grads", worker).size(), steps) << "both tables in one span";
  EXPECT_EQ(testing::Named(t, "d2h gathered", worker).size(), 0u);
}

}  // namespace
}  // namespace tessera
