// worker/device_staging.h through its CPU backend: the same code a GPU run executes,
// with the CPU "device" holding the model's own copies. Gradients reach the host mirrors
// exactly and are handed over in backward order as soon as their copy is done (at
// once on the CPU, where a copy happens when enqueued); values and batches go to the device exactly; a mirror's
// pinned block outlives the staging while a send still holds it.
#include "worker/device_staging.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "worker/model/mlp.h"

namespace tessera::worker {
namespace {

struct Batch {
  std::vector<float> features;
  std::vector<int32_t> labels;
  TensorView f() { return {features.data(), DType::kF32, {static_cast<int64_t>(labels.size()), 6}, Device::kCPU}; }
  TensorView l() { return {labels.data(), DType::kI32, {static_cast<int64_t>(labels.size())}, Device::kCPU}; }
};

Batch MakeBatch(int rows) {
  Batch b;
  for (int i = 0; i < rows * 6; ++i) b.features.push_back(0.1f * static_cast<float>((i * 7) % 11) - 0.5f);
  for (int i = 0; i < rows; ++i) b.labels.push_back(i % 3);
  return b;
}

std::unique_ptr<model::Mlp> MakeMlp() {
  model::MlpConfig c;
  c.input_dim = 6;
  c.hidden_sizes = {5, 4};
  c.num_classes = 3;
  c.seed = 9;
  auto m = model::Mlp::Create(c);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_OK((*m)->InitializeParameters());
  return std::move(m).value();
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

class DeviceStagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mlp_ = MakeMlp();
    auto s = DeviceStaging::Create(Device::kCPU, mlp_->parameters(), [this](model::Parameter* m) {
      handed_.push_back(m->spec.name);
    });
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    staging_ = std::move(s).value();
    mlp_->set_grad_ready_hook([this](model::Parameter* p) {
      calls_before_.push_back(handed_.size());
      ASSERT_OK(staging_->OnModelGradReady(p));
    });
  }

  std::unique_ptr<model::Mlp> mlp_;
  std::unique_ptr<DeviceStaging> staging_;
  std::vector<std::string> handed_;
  std::vector<size_t> calls_before_;  // handed_.size() when each hook call began
};

TEST_F(DeviceStagingTest, MirrorsAreSeparateHostCopiesWithTheSameSpecs) {
  std::vector<model::Parameter*> m = staging_->mirrors();
  std::vector<model::Parameter*> p = mlp_->parameters();
  ASSERT_EQ(m.size(), p.size());
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i]->spec.name, p[i]->spec.name) << i;
    EXPECT_EQ(m[i]->value.shape(), p[i]->value.shape()) << i;
    EXPECT_NE(m[i]->value.data(), p[i]->value.data()) << "a mirror has its own memory: " << i;
    EXPECT_NE(m[i]->grad.data(), p[i]->grad.data()) << i;
    EXPECT_EQ(m[i]->value.view().device, Device::kCPU) << i;
  }
}

TEST_F(DeviceStagingTest, GradientsReachTheHostExactlyInBackwardOrderAsTheirCopiesFinish) {
  Batch b = MakeBatch(7);
  auto on_device = staging_->StageBatch(b.f(), b.l());
  ASSERT_TRUE(on_device.ok()) << on_device.status().ToString();
  ASSERT_TRUE(mlp_->Forward(on_device->first, on_device->second).ok());
  ASSERT_OK(mlp_->Backward());
  // The CPU copies at once, so each hook call hands over its own parameter.
  ASSERT_EQ(calls_before_.size(), 6u);
  for (size_t k = 0; k < calls_before_.size(); ++k) EXPECT_EQ(calls_before_[k], k) << "call " << k;
  ASSERT_OK(staging_->FinishGrads());
  const std::vector<std::string> want = {"fc3.weight", "fc3.bias", "fc2.weight", "fc2.bias", "fc1.weight", "fc1.bias"};
  EXPECT_EQ(handed_, want);
  std::vector<model::Parameter*> m = staging_->mirrors();
  std::vector<model::Parameter*> p = mlp_->parameters();
  for (size_t i = 0; i < m.size(); ++i) EXPECT_TRUE(SameBytes(m[i]->grad, p[i]->grad)) << p[i]->spec.name;
}

TEST_F(DeviceStagingTest, StagedBatchEqualsTheHostBatch) {
  Batch b = MakeBatch(5);
  auto on_device = staging_->StageBatch(b.f(), b.l());
  ASSERT_TRUE(on_device.ok());
  EXPECT_NE(on_device->first.data, b.f().data) << "the device copy is its own memory";
  EXPECT_EQ(std::memcmp(on_device->first.data, b.features.data(), b.features.size() * 4), 0);
  EXPECT_EQ(std::memcmp(on_device->second.data, b.labels.data(), b.labels.size() * 4), 0);
  EXPECT_EQ(on_device->first.shape, (Shape{5, 6}));
  Batch bigger = MakeBatch(9);  // grows the blocks
  auto again = staging_->StageBatch(bigger.f(), bigger.l());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::memcmp(again->first.data, bigger.features.data(), bigger.features.size() * 4), 0);
}

TEST_F(DeviceStagingTest, AStartedBatchIsFinishedOnceAndOnlyOnce) {
  EXPECT_EQ(staging_->FinishBatch().status().code(), StatusCode::kFailedPrecondition);
  Batch b = MakeBatch(3);
  ASSERT_OK(staging_->StartBatch(b.f(), b.l()));
  EXPECT_TRUE(staging_->batch_pending());
  EXPECT_EQ(staging_->StartBatch(b.f(), b.l()).code(), StatusCode::kFailedPrecondition) << "one at a time";
  b.features.assign(b.features.size(), 9.0f);  // the host batch may change once started
  auto on_device = staging_->FinishBatch();
  ASSERT_TRUE(on_device.ok());
  EXPECT_FALSE(staging_->batch_pending());
  Batch original = MakeBatch(3);
  EXPECT_EQ(std::memcmp(on_device->first.data, original.features.data(), original.features.size() * 4), 0);
}

TEST_F(DeviceStagingTest, ValuesGoToTheModelExactly) {
  std::vector<model::Parameter*> m = staging_->mirrors();
  for (size_t i = 0; i < m.size(); ++i) {
    float* v = m[i]->value.as<float>();
    for (int64_t j = 0; j < m[i]->value.numel(); ++j) v[j] = static_cast<float>(i) + 0.001f * static_cast<float>(j);
    ASSERT_OK(staging_->ValueToDevice(i));
  }
  ASSERT_OK(staging_->WaitValues());
  std::vector<model::Parameter*> p = mlp_->parameters();
  for (size_t i = 0; i < m.size(); ++i) EXPECT_TRUE(SameBytes(m[i]->value, p[i]->value)) << p[i]->spec.name;
  EXPECT_FALSE(staging_->ValueToDevice(m.size()).ok());
}

TEST_F(DeviceStagingTest, UnknownParameterIsRefused) {
  model::Parameter stranger;
  Status st = staging_->OnModelGradReady(&stranger);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST_F(DeviceStagingTest, PinnedGradientOutlivesTheStagingWhileASendHoldsIt) {
  model::Parameter* m = staging_->mirrors()[0];
  float* g = m->grad.as<float>();
  g[0] = 42.0f;
  Buffer held = m->grad.buffer();  // what a zero-copy push keeps until ZeroMQ frees it
  EXPECT_EQ(held.use_count(), 2);
  staging_.reset();
  mlp_->set_grad_ready_hook(nullptr);
  EXPECT_EQ(held.use_count(), 1) << "the send's reference is the last one";
  EXPECT_EQ(held.as<float>()[0], 42.0f);
}

#if !TESSERA_HAVE_CUDA  // (a CUDA build allocates; gpu_job_test covers that)
TEST(DeviceModel, CudaModelInACpuOnlyBuildIsAFailedPrecondition) {
  model::MlpConfig c;
  c.device = Device::kCUDA;
  auto m = model::Mlp::Create(c);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kFailedPrecondition) << m.status().ToString();
}
#endif

TEST(DeviceModel, LayerRefusesAnInputOnAnotherDevice) {
  auto mlp = MakeMlp();
  Batch b = MakeBatch(2);
  TensorView f = b.f();
  f.device = Device::kCUDA;  // claims device memory
  auto r = mlp->layer(0).Forward(f);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("device memory"), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace tessera::worker
