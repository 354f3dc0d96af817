// TrainConfig validation, the step plan, and the metrics/summary format.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "common/hash.h"
#include "tests/testutil/testutil.h"
#include "worker/train_config.h"
#include "worker/train_metrics.h"

namespace tessera::worker {
namespace {

TEST(ParseOptimizerKind, AcceptsEveryServerOptimizer) {
  const std::pair<const char*, OptimizerKind> cases[] = {
      {"sgd", OptimizerKind::kSgd},       {"momentum", OptimizerKind::kMomentum},
      {"adagrad", OptimizerKind::kAdaGrad}, {"adam", OptimizerKind::kAdam},
      {"adamw", OptimizerKind::kAdamW}};
  for (const auto& [name, kind] : cases) {
    auto k = ParseOptimizerKind(name);
    ASSERT_TRUE(k.ok()) << name << ": " << k.status().ToString();
    EXPECT_EQ(*k, kind) << name;
    EXPECT_EQ(OptimizerKindName(kind), name);
  }
}

TEST(ParseOptimizerKind, UnknownNameIsNamedAndTheChoicesListed) {
  auto k = ParseOptimizerKind("adamx");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k.status().message().find("'adamx'"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("sgd, momentum, adagrad, adam or adamw"), std::string::npos)
      << k.status().message();
}

TEST(ValidateTrainConfig, DefaultsAreValid) { EXPECT_OK(ValidateTrainConfig(TrainConfig{})); }

TEST(ValidateTrainConfig, UnknownModelListsTheKnownOnes) {
  TrainConfig c;
  c.model = "cnn";
  Status st = ValidateTrainConfig(c);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unknown model 'cnn': expected mlp"), std::string::npos) << st.message();
}

TEST(ValidateTrainConfig, EachBadFieldIsRefusedNamingItsFlag) {
  struct Case {
    const char* flag;
    void (*mutate)(TrainConfig*);
  };
  const Case cases[] = {
      {"--batch_size=0", [](TrainConfig* c) { c->batch_size = 0; }},
      {"--steps=-1", [](TrainConfig* c) { c->steps = -1; }},
      {"--epochs=0", [](TrainConfig* c) { c->epochs = 0; }},
      {"--log_every=-1", [](TrainConfig* c) { c->log_every = -1; }},
      {"--eval_every=-2", [](TrainConfig* c) { c->eval_every = -2; }},
      {"--eval_batch_size=0", [](TrainConfig* c) { c->eval_batch_size = 0; }},
      {"--train_limit=-5", [](TrainConfig* c) { c->train_limit = -5; }},
      {"--test_limit=-5", [](TrainConfig* c) { c->test_limit = -5; }},
      {"--lr=", [](TrainConfig* c) { c->mlp.optimizer.lr = 0; }},
      {"--lr=", [](TrainConfig* c) { c->mlp.optimizer.lr = std::numeric_limits<float>::quiet_NaN(); }},
      {"--momentum=", [](TrainConfig* c) { c->mlp.optimizer.momentum = 1; }},
      {"--weight_decay=", [](TrainConfig* c) { c->mlp.optimizer.weight_decay = -1; }},
      {"--clip_norm=", [](TrainConfig* c) { c->mlp.optimizer.clip_norm = -1; }},
      {"--data=", [](TrainConfig* c) { c->data_dir = ""; }},
  };
  for (const Case& k : cases) {
    TrainConfig c;
    k.mutate(&c);
    Status st = ValidateTrainConfig(c);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << k.flag;
    EXPECT_EQ(st.message().rfind(k.flag, 0), 0u) << "expected the message to start with " << k.flag
                                                  << ": " << st.message();
  }
}

TEST(ValidateTrainConfig, StepsWithoutEpochsIsFine) {
  TrainConfig c;
  c.epochs = 0;
  c.steps = 10;
  EXPECT_OK(ValidateTrainConfig(c));
}

TEST(PlannedSteps, EpochsCoverTheSmallestPartition) {
  TrainConfig c;
  c.batch_size = 64;
  c.epochs = 3;
  // 1001 examples over 2 workers: shards of 500 and 501; ceil(500 / 64) = 8.
  EXPECT_EQ(StepsPerEpoch(64, 1001, 2), 8);
  EXPECT_EQ(PlannedSteps(c, 1001, 2), 24);
  // 60000 over 2: 30000 / 64 -> 469.
  EXPECT_EQ(StepsPerEpoch(64, 60000, 2), 469);
  // A partition smaller than a batch still makes one step per epoch.
  EXPECT_EQ(StepsPerEpoch(64, 10, 4), 1);
}

TEST(PlannedSteps, StepsOverrideEpochs) {
  TrainConfig c;
  c.epochs = 5;
  c.steps = 7;
  EXPECT_EQ(PlannedSteps(c, 60000, 2), 7);
}

TEST(ParamsDigest, IsChainedFnv1aInDeclarationOrder) {
  Tensor a = Tensor::Zeros(DType::kF32, {3});
  Tensor b = Tensor::Zeros(DType::kF32, {2});
  a.as<float>()[1] = 1.5f;
  b.as<float>()[0] = -2.0f;
  const uint64_t expected = Fnv1a64(b.data(), 8, Fnv1a64(a.data(), 12));
  EXPECT_EQ(ParamsDigest({&a, &b}), expected);
  EXPECT_NE(ParamsDigest({&b, &a}), expected) << "order must matter";
  EXPECT_EQ(DigestHex(0x00ab00000000cd01ULL), "00ab00000000cd01");
}

TEST(SummaryJson, HasTheDocumentedFieldsOnOneLine) {
  TrainSummary s;
  s.model = "mlp";
  s.sync = "ssp:2";
  s.steps = 10;
  s.samples_per_sec = 1234.5;
  s.test_accuracy = 0.98;
  s.wall_s = 3.25;
  s.params_digest = 0x0123456789abcdefULL;
  s.test_loss = std::numeric_limits<double>::quiet_NaN();
  const std::string j = SummaryJson(s);
  EXPECT_EQ(j.find('\n'), std::string::npos);
  for (const char* f : {"\"event\":\"summary\"", "\"model\":\"mlp\"", "\"sync\":\"ssp:2\"", "\"steps\":10",
                        "\"samples_per_sec\":1234.5", "\"test_accuracy\":0.980000", "\"wall_s\":3.250",
                        "\"params_digest\":\"0123456789abcdef\"", "\"test_loss\":null", "\"compute_s\":",
                        "\"comm_s\":"}) {
    EXPECT_NE(j.find(f), std::string::npos) << f << " missing in " << j;
  }
}

TEST(MetricsWriter, WritesOneJsonObjectPerLineWithExactLoss) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/sub/dir/m.jsonl";  // parents are created
  {
    auto w = MetricsWriter::Open(path);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    (*w)->Step(0, 0.5, 0.1, 100);
    (*w)->Eval(1, 0.9, 0.25, 1000);
    (*w)->Summary(TrainSummary{});
  }
  std::ifstream in(path);
  std::string l0, l1, l2, extra;
  ASSERT_TRUE(std::getline(in, l0) && std::getline(in, l1) && std::getline(in, l2));
  EXPECT_FALSE(std::getline(in, extra));
  EXPECT_EQ(l0, "{\"event\":\"step\",\"step\":0,\"epoch\":0.5000,\"loss\":0.10000000000000001,\"samples_per_sec\":100.0}");
  EXPECT_EQ(l1, "{\"event\":\"eval\",\"step\":1,\"test_accuracy\":0.900000,\"test_loss\":0.25,\"test_examples\":1000}");
  EXPECT_EQ(l2.rfind("{\"event\":\"summary\"", 0), 0u) << l2;
}

TEST(MetricsWriter, UnwritablePathIsInvalidArgumentNamingIt) {
  auto w = MetricsWriter::Open("/proc/no/such/dir/m.jsonl");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("--metrics_out=/proc/no/such/dir/m.jsonl"), std::string::npos)
      << w.status().message();
}

}  // namespace
}  // namespace tessera::worker
