// GradSync on one worker (no peers): routing by ParamKind, and the local optimizer update
// that must equal what a server does (per chunk of --chunk_bytes, clipping included).
#include "worker/grad_sync.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/optimizer_step.h"

namespace tessera::worker {
namespace {

model::Parameter Param(const std::string& name, ParamKind kind, int64_t n, const OptimizerConfig& opt) {
  model::Parameter p;
  p.spec.name = name;
  p.spec.kind = kind;
  p.spec.shape = {n};
  p.spec.optimizer = opt;
  p.value = Tensor::Zeros(DType::kF32, {n});
  p.grad = Tensor::Zeros(DType::kF32, {n});
  for (int64_t i = 0; i < n; ++i) {
    p.value.as<float>()[i] = std::sin(static_cast<float>(i));
    p.grad.as<float>()[i] = std::cos(static_cast<float>(i * 3));
  }
  return p;
}

TEST(GradSync, HybridKeepsTablesForTheServersAndUpdatesDenseLocally) {
  OptimizerConfig sgd;
  sgd.lr = 0.5f;
  model::Parameter table = Param("emb", ParamKind::kSparse, 8, sgd);
  model::Parameter w = Param("fc.weight", ParamKind::kDense, 10, sgd);
  GradSyncOptions o;
  o.sync = "hybrid";
  auto g = GradSync::Create(o, nullptr, 1, {&table, &w});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->server_params(), std::vector<size_t>{0});
  const std::vector<float> table_before(table.value.as<float>(), table.value.as<float>() + 8);
  std::vector<float> expect(10);
  for (int i = 0; i < 10; ++i) expect[i] = w.value.as<float>()[i] - 0.5f * w.grad.as<float>()[i];
  (*g)->OnGradReady(&w);
  ASSERT_TRUE((*g)->FinishStep({}).ok());
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(w.value.as<float>()[i], expect[i]) << i;
  for (int i = 0; i < 8; ++i) EXPECT_EQ(table.value.as<float>()[i], table_before[i]) << "the table is the servers'";
}

TEST(GradSync, AllReduceRefusesATable) {
  model::Parameter table = Param("emb", ParamKind::kSparse, 8, {});
  GradSyncOptions o;
  o.sync = "allreduce";
  auto g = GradSync::Create(o, nullptr, 1, {&table});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'emb' is a sparse table"), std::string::npos);
}

// Adam with clipping over 3 steps: the local update equals kernels::ApplyUpdate run
// chunk by chunk (chunk_bytes 16 = 4 elements), as the servers would.
TEST(GradSync, LocalUpdateEqualsTheServersPerChunk) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 0.01f;
  adam.clip_norm = 0.3f;
  model::Parameter w = Param("w", ParamKind::kDense, 10, adam);
  std::vector<float> ref(w.value.as<float>(), w.value.as<float>() + 10);
  std::vector<std::vector<float>> slots;
  for (int c = 0; c < 3; ++c) {
    const size_t len = c < 2 ? 4 : 2;
    slots.emplace_back(2 * len);
    ASSERT_TRUE(kernels::InitSlots(adam, slots.back(), len).ok());
  }
  GradSyncOptions o;
  o.sync = "allreduce";
  o.chunk_bytes = 16;
  auto g = GradSync::Create(o, nullptr, 1, {&w});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (int step = 1; step <= 3; ++step) {
    for (int i = 0; i < 10; ++i) w.grad.as<float>()[i] = std::cos(static_cast<float>(i * step));
    std::vector<float> grad(w.grad.as<float>(), w.grad.as<float>() + 10);
    for (int c = 0; c < 3; ++c) {
      const size_t off = static_cast<size_t>(c) * 4, len = c < 2 ? 4 : 2;
      ASSERT_TRUE(kernels::ApplyUpdate(adam, step, {ref.data() + off, len}, slots[c], {grad.data() + off, len}).ok());
    }
    ASSERT_TRUE((*g)->FinishStep({}).ok());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(w.value.as<float>()[i], ref[i]) << "step " << step << " element " << i;
  }
}

TEST(GradSync, OptionsAreValidatedNamingTheFlag) {
  GradSyncOptions o;
  o.sync = "allreduce";
  o.bucket_mb = -1;
  EXPECT_NE(ValidateGradSyncOptions(o).message().find("--bucket_mb=-1"), std::string::npos);
  o.bucket_mb = 25;
  o.sync = "asp";
  o.compress.kind = collective::CompressionSpec::Kind::kBF16;
  EXPECT_NE(ValidateGradSyncOptions(o).message().find("--compress=bf16 needs --sync=allreduce"), std::string::npos);
}

// The device path (worker/device_staging.h), with the CPU as the device: the model's own
// parameters carry the gradients; FinishStep copies them into the mirrors and updates the
// mirrors, leaving the model's values for the trainer to copy back.
TEST(GradSync, DeviceParamsFeedTheMirrorsAndTheOptimizerUpdatesThem) {
  OptimizerConfig sgd;
  sgd.lr = 0.25f;
  model::Parameter mirror = Param("fc.weight", ParamKind::kDense, 10, sgd);
  model::Parameter device = Param("fc.weight", ParamKind::kDense, 10, sgd);
  for (int i = 0; i < 10; ++i) {
    device.grad.as<float>()[i] = 0.5f * static_cast<float>(i);
    mirror.grad.as<float>()[i] = -100.0f;  // stale: must be replaced by the device's
  }
  const std::vector<float> device_before(device.value.as<float>(), device.value.as<float>() + 10);
  GradSyncOptions o;
  o.sync = "allreduce";
  auto g = GradSync::Create(o, nullptr, 1, {&mirror}, {&device});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE((*g)->reduces(&device));
  EXPECT_FALSE((*g)->reduces(&mirror)) << "hooks report the model's parameters";
  std::vector<float> expect(10);
  for (int i = 0; i < 10; ++i) expect[i] = mirror.value.as<float>()[i] - 0.25f * device.grad.as<float>()[i];
  (*g)->OnGradReady(&device);
  ASSERT_TRUE((*g)->FinishStep({}).ok());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(mirror.grad.as<float>()[i], device.grad.as<float>()[i]) << i;
    EXPECT_FLOAT_EQ(mirror.value.as<float>()[i], expect[i]) << i;
    EXPECT_EQ(device.value.as<float>()[i], device_before[i]) << "the trainer copies values back: " << i;
  }
}

TEST(GradSync, DeviceParamsMustMatchAndCannotBeTopKCompressed) {
  model::Parameter a = Param("a", ParamKind::kDense, 4, {});
  model::Parameter b = Param("b", ParamKind::kDense, 4, {});
  model::Parameter da = Param("a", ParamKind::kDense, 4, {});
  GradSyncOptions o;
  o.sync = "allreduce";
  auto short_list = GradSync::Create(o, nullptr, 1, {&a, &b}, {&da});
  ASSERT_FALSE(short_list.ok());
  EXPECT_NE(short_list.status().message().find("1 device parameters for 2 parameters"), std::string::npos);
  o.compress.kind = collective::CompressionSpec::Kind::kTopK;
  o.compress.topk_ratio = 0.5;
  auto topk = GradSync::Create(o, nullptr, 1, {&a}, {&da});
  ASSERT_FALSE(topk.ok());
  EXPECT_NE(topk.status().message().find("topk"), std::string::npos) << topk.status().ToString();
}

}  // namespace
}  // namespace tessera::worker
