// `tessera train` as users run it: real jobs through `tessera launch` (1 coordinator,
// 2 servers, 2 workers on loopback) on a subset of MNIST, checked through the metrics
// file worker 0 writes (--metrics_out, docs/training.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

constexpr const char* kSmallJob = testing::kQuickMnistJob;

using JobResult = testing::JobRun;
using testing::Events;

std::string DataDir() { return SourceDir() + "/data/mnist"; }

// Runs `tessera launch --servers S --workers W <flags> --data=<data> --metrics_out=...`.
JobResult RunTrain(const std::string& flags, const std::string& data = DataDir(), int servers = 2,
                   int workers = 2) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  return testing::RunJobCommand(testing::LaunchCommand(flags + " --data=" + data, metrics, servers, workers, 2),
                                metrics, 240);
}

std::string Field(const std::string& json, const std::string& key) { return testing::JsonField(json, key); }

std::string Summary(const JobResult& r) {
  auto s = Events(r, "summary");
  return s.empty() ? "" : s.back();
}

class TrainReachesAccuracy : public ::testing::TestWithParam<const char*> {};

// An untrained 10-class model scores about 10%; 90% on held-out images needs learning.
TEST_P(TrainReachesAccuracy, InEachSyncMode) {
  JobResult r = RunTrain(std::string(kSmallJob) + " --sync=" + GetParam());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string summary = Summary(r);
  ASSERT_FALSE(summary.empty()) << r.output;
  EXPECT_EQ(Field(summary, "sync"), GetParam());
  EXPECT_EQ(Field(summary, "model"), "mlp");
  EXPECT_EQ(Field(summary, "test_examples"), "1000");
  EXPECT_GE(std::stod(Field(summary, "test_accuracy")), 0.90) << summary;
  EXPECT_GT(std::stod(Field(summary, "samples_per_sec")), 0) << summary;
  // 6000 examples per worker / 64 = 94 steps per epoch, 3 epochs; one step line each.
  EXPECT_EQ(Field(summary, "steps"), "282");
  EXPECT_EQ(Events(r, "step").size(), 282u);
  ASSERT_EQ(Events(r, "eval").size(), 1u);
  EXPECT_EQ(Field(Events(r, "eval")[0], "step"), "282");
  EXPECT_EQ(r.metrics.back(), summary) << "the summary is the last line";
  EXPECT_NE(r.output.find("summary: " + summary), std::string::npos) << "summary is printed to stdout";
}

INSTANTIATE_TEST_SUITE_P(Sync, TrainReachesAccuracy, ::testing::Values("bsp", "ssp:2", "asp"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n == "ssp:2" ? std::string("ssp2") : n;
                         });

std::vector<std::string> Losses(const JobResult& r) {
  std::vector<std::string> out;
  for (const auto& l : Events(r, "step")) out.push_back(Field(l, "loss"));
  return out;
}

TEST(TrainDeterminism, BspRunsWithTheSameFlagsAreBitwiseIdentical) {
  const std::string flags = std::string(kSmallJob) + " --steps=60 --sync=bsp --deterministic";
  JobResult a = RunTrain(flags);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  JobResult b = RunTrain(flags);
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const auto la = Losses(a), lb = Losses(b);
  ASSERT_EQ(la.size(), 60u);
  ASSERT_EQ(lb.size(), 60u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], lb[i]) << "loss differs at step " << i;
  const std::string da = Field(Summary(a), "params_digest");
  EXPECT_EQ(da.size(), 16u);
  EXPECT_EQ(da, Field(Summary(b), "params_digest"));

  JobResult c = RunTrain(std::string(kSmallJob) + " --steps=60 --sync=bsp --deterministic --seed=2");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(Field(Summary(c), "params_digest"), da) << "a different --seed must change the result";
  EXPECT_NE(Losses(c), la);
}

TEST(TrainFlags, UnknownModelExitsWithConfigErrorListingModels) {
  JobResult r = RunTrain("--model=cnn");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown model 'cnn': expected mlp"), std::string::npos) << r.output;
}

TEST(TrainFlags, BadOptimizerExitsWithConfigErrorListingOptimizers) {
  JobResult r = RunTrain("--optimizer=adamx");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown optimizer 'adamx'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sgd, momentum, adagrad, adam or adamw"), std::string::npos) << r.output;
}

TEST(TrainFlags, MissingDataDirExitsWithConfigErrorNamingTheFile) {
  testing::TempDir empty;
  JobResult r = RunTrain(kSmallJob, empty.path() + "/no-mnist-here");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(empty.path() + "/no-mnist-here/train-images-idx3-ubyte.gz"), std::string::npos)
      << r.output;
}

TEST(TrainFlags, UnknownFlagExitsWithConfigError) {
  JobResult r = RunTrain("--epochz=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown flag --epochz"), std::string::npos) << r.output;
}

TEST(TrainFlags, DeterministicNeedsBsp) {
  JobResult r = RunTrain("--deterministic --sync=asp");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--deterministic needs --sync=bsp"), std::string::npos) << r.output;
}

// The shipped flag files parse and train (shortened to a few steps here).
TEST(TrainExamples, FlagFilesRun) {
  for (const char* f : {"mnist_mlp.flags", "mnist_mlp_quick.flags"}) {
    JobResult r = RunTrain("--flagfile=" + SourceDir() + "/examples/" + f + " --steps=5 --test_limit=200");
    ASSERT_EQ(r.exit_code, 0) << f << "\n" << r.output;
    EXPECT_EQ(Field(Summary(r), "steps"), "5") << f;
  }
}

}  // namespace
}  // namespace tessera
