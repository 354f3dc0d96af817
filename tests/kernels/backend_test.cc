// Backend selection: what a CPU-only build answers for CUDA tensors, and that a CUDA
// build without a usable device reports "no device" instead of failing.
#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

TEST(KernelsBackend, CudaTensorInCpuOnlyBuildIsFailedPrecondition) {
  if (BuiltWithCuda()) GTEST_SKIP() << "this build has the CUDA backend";
  EXPECT_FALSE(CudaDeviceAvailable());
  float x = 1;
  TensorView v{&x, DType::kF32, {1}, Device::kCUDA};
  const Status s = Scale(v, 2);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(x, 1);
  EXPECT_EQ(CopyTensor(TensorView{&x, DType::kF32, {1}, Device::kCPU}, v).code(),
            StatusCode::kFailedPrecondition);
}

TEST(KernelsBackend, DeviceProbeNeverFails) {
  // Without a GPU (or with a too-old driver) this is simply false; it must not abort.
  const bool available = CudaDeviceAvailable();
  if (!BuiltWithCuda()) {
    EXPECT_FALSE(available);
  }
  SUCCEED() << "CudaDeviceAvailable() = " << available;
}

TEST(KernelsBackend, ZeroLengthInputsAreNoOps) {
  TensorView empty{nullptr, DType::kF32, {0}, Device::kCPU};
  TensorView empty2d{nullptr, DType::kF32, {0, 4}, Device::kCPU};
  EXPECT_OK(Scale(empty, 2));
  EXPECT_OK(Fill(empty, 2));
  EXPECT_OK(Axpy(1, empty, empty));
  auto s = Sum(empty);
  ASSERT_OK(s.status());
  EXPECT_EQ(*s, 0);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kMomentum;
  std::vector<TensorView> slots = {empty};
  EXPECT_OK(ApplyOptimizer(cfg, 1, empty, empty, slots));
  EXPECT_OK(EmbeddingGather(TensorView{nullptr, DType::kF32, {0, 4}, Device::kCPU},
                            TensorView{nullptr, DType::kI64, {0}, Device::kCPU}, empty2d));
  TensorView labels{nullptr, DType::kI32, {0}, Device::kCPU};
  auto loss = SoftmaxCrossEntropy(empty2d, labels, TensorView{});
  ASSERT_OK(loss.status());
  EXPECT_EQ(*loss, 0);
}

}  // namespace
}  // namespace tessera::kernels::testing
