// Backend selection: what a CPU-only build answers for CUDA tensors, and that a CUDA
// build without a usable device reports "no device" instead of failing.
#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

// The CPU backend defaults to one thread; the tests run with two so the OpenMP paths
// (blocks above 65536 elements, chunked reductions) are exercised as well.
class TwoCpuThreads : public ::testing::Environment {
 public:
  void SetUp() override { SetCpuThreads(2); }
};
[[maybe_unused]] ::testing::Environment* const kTwoCpuThreads =
    ::testing::AddGlobalTestEnvironment(new TwoCpuThreads);

TEST(KernelsCpuThreads, ResultsDoNotDependOnTheThreadCount) {
  const int64_t n = 300001;  // several 65536-element blocks and chunks
  const auto x = RandomFloats(n, 42);
  const auto g = RandomFloats(n, 43);
  std::vector<double> sums;
  std::vector<std::vector<float>> params;
  for (int threads : {1, 2, 3}) {
    SetCpuThreads(threads);
    std::vector<float> xs = x, p = x, gs = g, m(n, 0.0f), v(n, 0.0f);
    auto sum = L2NormSquared(TensorView{xs.data(), DType::kF32, {n}, Device::kCPU});
    ASSERT_OK(sum.status());
    sums.push_back(*sum);
    OptimizerConfig cfg;
    cfg.kind = OptimizerKind::kAdam;
    std::vector<TensorView> slots = {TensorView{m.data(), DType::kF32, {n}, Device::kCPU},
                                     TensorView{v.data(), DType::kF32, {n}, Device::kCPU}};
    ASSERT_OK(ApplyOptimizer(cfg, 1, TensorView{p.data(), DType::kF32, {n}, Device::kCPU},
                             TensorView{gs.data(), DType::kF32, {n}, Device::kCPU}, slots));
    params.push_back(p);
  }
  SetCpuThreads(2);
  EXPECT_EQ(sums[0], sums[1]);
  EXPECT_EQ(sums[0], sums[2]);
  EXPECT_EQ(0, std::memcmp(params[0].data(), params[1].data(), n * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(params[0].data(), params[2].data(), n * sizeof(float)));
}

// Compiled per build rather than skipped at run time: CI fails a run with skipped non-gpu
// tests (scripts/test.sh), and which backend exists is a build fact, not a missing tool.
#if !TESSERA_HAVE_CUDA
TEST(KernelsBackend, CudaTensorInCpuOnlyBuildIsFailedPrecondition) {
  EXPECT_FALSE(CudaDeviceAvailable());
  float x = 1;
  TensorView v{&x, DType::kF32, {1}, Device::kCUDA};
  const Status s = Scale(v, 2);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(x, 1);
  EXPECT_EQ(CopyTensor(TensorView{&x, DType::kF32, {1}, Device::kCPU}, v).code(),
            StatusCode::kFailedPrecondition);
}
#endif

// Without a device every CUDA op fails with the CUDA call that failed, by name
// (cuda_check.h), and writes nothing through the (host) pointer it was handed.
void ExpectCudaOpsFailClearly() {
  float x[4] = {1, 2, 3, 4};
  TensorView v{x, DType::kF32, {2, 2}, Device::kCUDA};
  const Status scale = Scale(v, 2);
  EXPECT_EQ(scale.code(), StatusCode::kInternal) << scale.ToString();
  EXPECT_NE(scale.message().find("CUDA error in "), std::string::npos) << scale.ToString();
  EXPECT_FALSE(Sum(v).ok());
  EXPECT_FALSE(Gemm(false, false, 1, v, v, 0, v).ok());
  std::vector<uint64_t> uniq;
  Tensor summed;
  uint64_t keys[2] = {1, 1};
  EXPECT_FALSE(ScatterAddUnique(TensorView{keys, DType::kU64, {2}, Device::kCUDA}, v, &uniq,
                                &summed).ok());
  EXPECT_EQ(x[0], 1);
}

// The probe agrees with what the CUDA backend can actually do. Without a device (or with
// a too-old driver) the probe is false, must not abort, and a device allocation fails with
// a status naming the CUDA call; with a device, the allocation works and a CUDA op gives
// the CPU's result bit for bit (Scale is one rounding per element on both).
TEST(KernelsBackend, DeviceProbeMatchesWhatTheCudaBackendCanDo) {
  const bool available = CudaDeviceAvailable();
  auto backend = internal::BackendFor(Device::kCUDA);
  if (!BuiltWithCuda()) {
    EXPECT_FALSE(available);
    EXPECT_EQ(backend.status().code(), StatusCode::kFailedPrecondition) << backend.status().ToString();
    return;
  }
  ASSERT_OK(backend.status());
  auto buf = (*backend)->allocate(4 * sizeof(float));
  ASSERT_EQ(buf.ok(), available) << "probe says " << available << ", cudaMalloc says "
                                 << buf.status().ToString();
  if (!available) {
    EXPECT_EQ(buf.status().code(), StatusCode::kInternal);
    EXPECT_NE(buf.status().message().find("cudaMalloc"), std::string::npos) << buf.status().ToString();
    ExpectCudaOpsFailClearly();
    return;
  }
  std::vector<float> host = {1.0f, -2.5f, 3.25f, 1e-3f}, want = host, got(4, 0.0f);
  TensorView dev{buf->data(), DType::kF32, {4}, Device::kCUDA};
  ASSERT_OK(CopyTensor(TensorView{host.data(), DType::kF32, {4}, Device::kCPU}, dev));
  ASSERT_OK(Scale(dev, 0.3f));
  ASSERT_OK(Scale(TensorView{want.data(), DType::kF32, {4}, Device::kCPU}, 0.3f));
  ASSERT_OK(CopyTensor(dev, TensorView{got.data(), DType::kF32, {4}, Device::kCPU}));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "mismatch at index " << i;
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
