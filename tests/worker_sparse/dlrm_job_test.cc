// --model=dlrm as users run it: `tessera datagen criteo` writes a small Criteo-layout set
// with a planted model, then a real job through `tessera launch` (coordinator, 2 servers,
// 2 workers on loopback) trains on it and must come close to the planted model's AUC,
// which the generator prints. An untrained model scores AUC 0.5; one that ignored the
// embeddings or the dense features could not get within the margin.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::TesseraBinary;

// Writes a data set into `dir`; returns the planted AUC printed by the generator.
double Generate(const std::string& dir, int rows, int valid_rows, int seed) {
  auto r = RunCommand(TesseraBinary() + " datagen criteo --rows " + std::to_string(rows) +
                          " --valid_rows " + std::to_string(valid_rows) + " --seed " +
                          std::to_string(seed) + " -o " + dir,
                      120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const std::string key = "planted model on valid.txt: AUC ";
  const size_t p = r.output.find(key);
  if (p == std::string::npos) {
    ADD_FAILURE() << r.output;
    return std::nan("");
  }
  return std::stod(r.output.substr(p + key.size()));
}

double Number(const std::string& json, const std::string& key) {
  const std::string v = testing::JsonField(json, key);
  return v.empty() ? std::nan("") : std::stod(v);
}

TEST(DlrmJob, ReachesThePlantedAucOnGeneratedCriteo) {
  testing::TempDir tmp;
  const double planted = Generate(tmp.path() + "/criteo", 100000, 10000, 3);
  ASSERT_GT(planted, 0.75) << "the planted model must leave room to learn";
  ASSERT_LT(planted, 0.95);
  const std::string metrics = tmp.path() + "/metrics.jsonl";
  // One epoch, as DLRM is trained on Criteo (a second one memorises the rare ids).
  const std::string flags =
      "--model=dlrm --data=" + tmp.path() +
      "/criteo --embed_dim=16 --bottom_mlp=64 --hidden=64,32 --batch_size=256 --epochs=1 "
      "--optimizer=adam --lr=0.01 --log_every=0 --seed=1 --sync=bsp";
  testing::JobRun r =
      testing::RunJobCommand(testing::LaunchCommand(flags, metrics, 2, 2, 2), metrics, 240);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto summaries = testing::Events(r, "summary");
  ASSERT_EQ(summaries.size(), 1u) << r.output;
  const std::string& s = summaries[0];
  EXPECT_NEAR(Number(s, "initial_eval_loss"), 0.69, 0.15) << s;
  EXPECT_EQ(Number(s, "test_examples"), 10000) << s;
  const double auc = Number(s, "test_auc");
  // Measured: 0.819 against a planted 0.845 (docs/models.md#dlrm). A model without the
  // embeddings, the interactions or a working backward stays far below.
  EXPECT_GT(auc, planted - 0.04) << "planted AUC " << planted << "; " << s;
  EXPECT_LE(auc, planted + 0.02) << "above the ceiling: the evaluation is wrong; " << s;
  EXPECT_GT(Number(s, "keys_pushed"), 0) << s;
}

// examples/dlrm_criteo.flags parses and trains (on a small generated set instead of its
// data directory: later flags override the file's).
TEST(DlrmJob, ExampleFlagFileRuns) {
  testing::TempDir tmp;
  Generate(tmp.path() + "/criteo", 3000, 1000, 5);
  const std::string metrics = tmp.path() + "/metrics.jsonl";
  testing::JobRun r = testing::RunJobCommand(
      testing::LaunchCommand("--flagfile=" + testing::SourceDir() +
                                 "/examples/dlrm_criteo.flags --data=" + tmp.path() +
                                 "/criteo --steps=5",
                             metrics, 2, 2, 2),
      metrics, 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto summaries = testing::Events(r, "summary");
  ASSERT_EQ(summaries.size(), 1u) << r.output;
  EXPECT_EQ(testing::JsonField(summaries[0], "steps"), "5") << summaries[0];
  EXPECT_EQ(testing::JsonField(summaries[0], "model"), "dlrm") << summaries[0];
}

// --sync=hybrid: both MLPs all-reduced among the workers, the 26 tables through the
// servers. With --deterministic it computes what bsp computes, bit for bit, and the
// workers' dense copies agree.
TEST(DlrmJob, HybridMatchesBspBitwise) {
  testing::TempDir tmp;
  Generate(tmp.path() + "/criteo", 6000, 1000, 6);
  const std::string flags =
      "--model=dlrm --data=" + tmp.path() +
      "/criteo --embed_dim=4 --bottom_mlp=8 --hidden=8 --batch_size=64 --steps=20 "
      "--optimizer=adagrad --lr=0.05 --log_every=0 --seed=2 --deterministic --sync=";
  std::string digest[2];
  for (int i = 0; i < 2; ++i) {
    const std::string metrics = tmp.path() + "/metrics-" + std::to_string(i) + ".jsonl";
    testing::JobRun r = testing::RunJobCommand(
        testing::LaunchCommand(flags + (i == 0 ? "hybrid" : "bsp"), metrics, 2, 2, 2), metrics,
        120);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto summaries = testing::Events(r, "summary");
    ASSERT_EQ(summaries.size(), 1u) << r.output;
    digest[i] = testing::JsonField(summaries[0], "params_digest");
    if (i == 0) {
      EXPECT_GT(Number(summaries[0], "bytes_allreduced"), 0) << summaries[0];
      const std::string line = "dense parameters digest ";
      const size_t a = r.output.find(line), b = r.output.rfind(line);
      ASSERT_NE(a, b) << "one line per worker: " << r.output;
      EXPECT_EQ(r.output.substr(a + line.size(), 16), r.output.substr(b + line.size(), 16))
          << r.output;
    }
  }
  ASSERT_EQ(digest[0].size(), 16u);
  EXPECT_EQ(digest[0], digest[1]) << "hybrid and bsp trained different parameters";
}

TEST(Datagen, BadUsageIsExit2AndWritesNothing) {
  testing::TempDir tmp;
  const std::string out = tmp.path() + "/out";
  for (const std::string& args :
       std::vector<std::string>{"", "imagenet --rows 10 -o " + out, "criteo -o " + out,
                                "criteo --rows 0 -o " + out, "criteo --rows 10x -o " + out,
                                "criteo --rows 10", "criteo --rows 10 --frobnicate 1 -o " + out}) {
    auto r = RunCommand(TesseraBinary() + " datagen " + args, 30);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("usage: tessera datagen criteo"), std::string::npos) << args << "\n"
                                                                                 << r.output;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  auto ok = RunCommand(
      TesseraBinary() + " datagen criteo --rows=20 --valid_rows=5 --seed=9 -o " + out, 30);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(std::filesystem::exists(out + "/planted.txt"));
  EXPECT_TRUE(std::filesystem::exists(out + "/valid.txt"));
}

TEST(DlrmJob, BadDataIsAConfigurationError) {
  testing::TempDir tmp;
  const std::string metrics = tmp.path() + "/metrics.jsonl";
  testing::JobRun none = testing::RunJobCommand(
      testing::LaunchCommand("--model=dlrm --data=" + tmp.path() + "/missing --log_every=0",
                             metrics, 1, 1, 2),
      metrics, 120);
  EXPECT_EQ(none.exit_code, 2) << none.output;
  EXPECT_NE(none.output.find("no Criteo training file"), std::string::npos) << none.output;
}

}  // namespace
}  // namespace tessera
