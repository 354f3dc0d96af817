// --sync=hybrid for the sparse models, as users run it: `tessera launch` starts the
// coordinator and 2 servers, and the 2 workers as one `mpirun -np 2` child; widedeep's
// dense MLP is all-reduced among the workers and updated locally, its tables go through
// the servers. Checked through worker 0's metrics file and every worker's log line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

struct JobResult {
  int exit_code = -1;
  std::string output;
  std::string summary;  // the summary line of the metrics file
};

JobResult RunTrain(const std::string& flags) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  auto r = RunCommand(TesseraBinary() + " launch --servers 2 --workers 2 --grace_s 2 " + flags +
                          " --data=" + SourceDir() + "/data/a9a --metrics_out=" + metrics,
                      240);
  JobResult out{r.exit_code, r.output, ""};
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\":\"summary\"") != std::string::npos) out.summary = line;
  }
  return out;
}

double Number(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t p = json.find(k);
  if (p == std::string::npos) return std::nan("");
  return std::stod(json.substr(p + k.size()));
}

std::string Text(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const size_t p = json.find(k);
  return p == std::string::npos ? "" : json.substr(p + k.size(), json.find('"', p + k.size()) - p - k.size());
}

// worker index -> the digest of its dense parameters, from the workers' log lines.
std::map<int, std::string> DenseDigests(const std::string& output) {
  std::map<int, std::string> out;
  static const std::regex re("worker ([0-9]+): dense parameters digest ([0-9a-f]{16})");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), re); it != std::sregex_iterator(); ++it) {
    out[std::stoi((*it)[1])] = (*it)[2];
  }
  return out;
}

constexpr int kSteps = 250;
// 125 steps per epoch of 2 x 32 examples of 8000: two epochs.
const std::string kWideDeep =
    "--model=widedeep --train_limit=8000 --test_limit=4000 --steps=" + std::to_string(kSteps) +
    " --batch_size=32 --optimizer=adagrad --lr=0.03 --hidden=16 --embed_dim=4 --log_every=0 --seed=3 --deterministic";
// deep.fc1 [4,16] + [16], deep.fc2 [16,1] + [1], f32.
constexpr uint64_t kDenseBytes = 4 * (4 * 16 + 16 + 16 * 1 + 1);

TEST(SparseHybridJob, WideDeepLearnsWithDenseByAllReduceAndTablesThroughServers) {
  JobResult hybrid = RunTrain("--sync=hybrid " + kWideDeep);
  ASSERT_EQ(hybrid.exit_code, 0) << hybrid.output;
  EXPECT_GT(Number(hybrid.summary, "test_auc"), 0.88) << hybrid.summary;
  EXPECT_LT(Number(hybrid.summary, "logloss"), 0.40) << hybrid.summary;
  EXPECT_EQ(Text(hybrid.summary, "sync"), "hybrid") << hybrid.summary;

  // Every worker holds its own copy of the dense parameters: all the same bits.
  const auto digests = DenseDigests(hybrid.output);
  ASSERT_EQ(digests.size(), 2u) << hybrid.output;
  EXPECT_EQ(digests.at(0), digests.at(1)) << hybrid.output;

  // The same job in bsp pushes the same sparse rows plus the dense gradients every step;
  // in hybrid the dense gradients go through all-reduce instead.
  JobResult bsp = RunTrain("--sync=bsp " + kWideDeep);
  ASSERT_EQ(bsp.exit_code, 0) << bsp.output;
  EXPECT_GT(Number(bsp.summary, "keys_pushed"), 0) << bsp.summary;
  EXPECT_EQ(Number(hybrid.summary, "keys_pushed"), Number(bsp.summary, "keys_pushed"));
  EXPECT_EQ(Number(bsp.summary, "bytes_pushed") - Number(hybrid.summary, "bytes_pushed"),
            static_cast<double>(kSteps * kDenseBytes))
      << "bsp " << bsp.summary << "\nhybrid " << hybrid.summary;
  EXPECT_EQ(Number(hybrid.summary, "bytes_allreduced"), static_cast<double>(kSteps * kDenseBytes)) << hybrid.summary;
  EXPECT_TRUE(std::isnan(Number(bsp.summary, "bytes_allreduced"))) << bsp.summary;
  EXPECT_TRUE(DenseDigests(bsp.output).empty()) << "bsp keeps the dense parameters on the servers";
  // Same math: the mean of two gradients is (a + b) / 2 on the servers and in MPI alike,
  // and the local optimizer is the servers' code, so the parameters are bitwise equal.
  EXPECT_EQ(Text(hybrid.summary, "params_digest"), Text(bsp.summary, "params_digest"));
}

// A model without dense parameters has nothing to all-reduce: hybrid is bsp, bit for bit.
TEST(SparseHybridJob, SparseOnlyModelRunsAsBsp) {
  const std::string flags =
      "--model=logreg --train_limit=2000 --test_limit=500 --steps=20 --batch_size=32 --optimizer=adagrad "
      "--lr=0.05 --log_every=0 --deterministic";
  JobResult hybrid = RunTrain("--sync=hybrid " + flags), bsp = RunTrain("--sync=bsp " + flags);
  ASSERT_EQ(hybrid.exit_code, 0) << hybrid.output;
  ASSERT_EQ(bsp.exit_code, 0) << bsp.output;
  EXPECT_NE(hybrid.output.find("has no dense parameters"), std::string::npos) << hybrid.output;
  EXPECT_EQ(Text(hybrid.summary, "params_digest").size(), 16u) << hybrid.summary;
  EXPECT_EQ(Text(hybrid.summary, "params_digest"), Text(bsp.summary, "params_digest"));
}

TEST(SparseHybridJob, AllReduceRefusesSparseTablesClearly) {
  JobResult all = RunTrain("--sync=allreduce --model=widedeep --steps=2");
  EXPECT_EQ(all.exit_code, 2) << all.output;
  EXPECT_NE(all.output.find("--sync=allreduce cannot train --model=widedeep: its sparse tables (wide.weight, "
                            "deep.embedding)"),
            std::string::npos)
      << all.output;
  EXPECT_NE(all.output.find("use --sync=hybrid"), std::string::npos) << all.output;
}

}  // namespace
}  // namespace tessera
