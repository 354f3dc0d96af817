// BLAS-1 helpers and reductions vs double references. Bounds: elementwise f32 results
// within kF32Rel relative (+1e-7 absolute for results near 0); sums within
// gamma_n * sum|x_i| (n * 2^-24), which double accumulation beats by far.
#include <cmath>

#include "kernels/math/cast.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

class KernelsBlas : public KernelTestP<int64_t> {};

TEST_P(KernelsBlas, FillWritesEveryElement) {
  const int64_t n = GetParam();
  DeviceTensor x = PoisonedF32({n});
  ASSERT_OK(Fill(x.view(), 2.5f));
  ExpectAllClose(x.Download<float>(), std::vector<double>(n, 2.5), 0, 0, "Fill");
}

TEST_P(KernelsBlas, AxpyF32MatchesReference) {
  const int64_t n = GetParam();
  auto x = RandomFloats(n, 1), y = RandomFloats(n, 2);
  DeviceTensor dx = F32({n}, x), dy = F32({n}, y);
  ASSERT_OK(Axpy(-0.75f, dx.view(), dy.view()));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = double(y[i]) - 0.75 * double(x[i]);
  ExpectAllClose(dy.Download<float>(), want, kF32Rel, 1e-7, "Axpy f32");
}

TEST_P(KernelsBlas, AxpyWidensHalfAndBFloat16Inputs) {
  const int64_t n = GetParam();
  const auto x = RandomFloats(n, 3, -4, 4);
  const auto y = RandomFloats(n, 4);
  for (DType t : {DType::kF16, DType::kBF16}) {
    std::vector<uint16_t> xh(n);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) {
      xh[i] = t == DType::kF16 ? math::F32ToF16(x[i]) : math::F32ToBF16(x[i]);
      const double xw = t == DType::kF16 ? math::F16ToF32(xh[i]) : math::BF16ToF32(xh[i]);
      want[i] = double(y[i]) + 2.0 * xw;
    }
    DeviceTensor dx = DeviceTensor::From(t, {n}, xh), dy = F32({n}, y);
    ASSERT_OK(Axpy(2.0f, dx.view(), dy.view()));
    ExpectAllClose(dy.Download<float>(), want, kF32Rel, 1e-7, std::string("Axpy ") +
                   std::string(DTypeName(t)));
  }
}

TEST_P(KernelsBlas, ScaleMatchesReference) {
  const int64_t n = GetParam();
  auto x = RandomFloats(n, 5);
  DeviceTensor dx = F32({n}, x);
  ASSERT_OK(Scale(dx.view(), 3.25f));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = 3.25 * double(x[i]);
  ExpectAllClose(dx.Download<float>(), want, kF32Rel, 0, "Scale");
}

TEST_P(KernelsBlas, AddMatchesReferenceAndMayAlias) {
  const int64_t n = GetParam();
  auto a = RandomFloats(n, 6), b = RandomFloats(n, 7);
  DeviceTensor da = F32({n}, a), db = F32({n}, b), out = PoisonedF32({n});
  ASSERT_OK(Add(da.view(), db.view(), out.view()));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = double(a[i]) + double(b[i]);
  ExpectAllClose(out.Download<float>(), want, kF32Rel, 1e-7, "Add");
  ASSERT_OK(Add(da.view(), db.view(), da.view()));  // out aliases a
  ExpectAllClose(da.Download<float>(), want, kF32Rel, 1e-7, "Add aliased");
}

TEST_P(KernelsBlas, SumAndL2NormSquaredMatchReference) {
  const int64_t n = GetParam() * 5;  // up to 350005: several CPU chunks, many GPU blocks
  auto x = RandomFloats(n, 8);
  DeviceTensor dx = F32({n}, x);
  double sum = 0, sq = 0, abs_sum = 0;
  for (float v : x) {
    sum += v;
    sq += double(v) * v;
    abs_sum += std::fabs(v);
  }
  auto got_sum = Sum(dx.view());
  auto got_sq = L2NormSquared(dx.view());
  ASSERT_OK(got_sum.status());
  ASSERT_OK(got_sq.status());
  ExpectClose(*got_sum, sum, 0, 1e-12 * (abs_sum + 1), "Sum");
  ExpectClose(*got_sq, sq, 1e-12, 1e-300, "L2NormSquared");
}

TEST_P(KernelsBlas, ReductionsAreDeterministic) {
  const int64_t n = GetParam() * 5;
  DeviceTensor dx = F32({n}, RandomFloats(n, 9));
  auto a = Sum(dx.view()), b = Sum(dx.view());
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_EQ(*a, *b);
}

TEST_P(KernelsBlas, ClipByNormScalesOnlyAboveTheThreshold) {
  const int64_t n = GetParam();
  auto x = RandomFloats(n, 10);
  double norm = 0;
  for (float v : x) norm += double(v) * v;
  norm = std::sqrt(norm);
  DeviceTensor dx = F32({n}, x);
  const float clip = static_cast<float>(norm / 2);
  auto got = ClipByNorm(dx.view(), n > 0 ? clip : 1.0f);
  ASSERT_OK(got.status());
  ExpectClose(*got, norm, 1e-12, 1e-300, "norm before clipping");
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = n > 0 ? double(x[i]) * (clip / norm) : 0;
  ExpectAllClose(dx.Download<float>(), want, 2 * kF32Rel, 1e-7, "clipped");
  // Below the threshold: untouched.
  DeviceTensor dy = F32({n}, x);
  ASSERT_OK(ClipByNorm(dy.view(), static_cast<float>(norm * 2 + 1)).status());
  ExpectAllClose(dy.Download<float>(), ToDouble(x), 0, 0, "not clipped");
}

TEST_P(KernelsBlas, CopyTensorRoundTrips) {
  const int64_t n = GetParam();
  auto x = RandomFloats(n, 11);
  DeviceTensor a = F32({n}, x), b = PoisonedF32({n});
  ASSERT_OK(CopyTensor(a.view(), b.view()));
  ExpectAllClose(b.Download<float>(), ToDouble(x), 0, 0, "CopyTensor");
}

INSTANTIATE_TEST_SUITE_P(Sizes, KernelsBlas, ::testing::ValuesIn(OddSizes()));

class KernelsBlasValidation : public KernelTest {};

TEST_F(KernelsBlasValidation, RejectsMismatchedSizesAndDtypes) {
  DeviceTensor a = F32({4}, RandomFloats(4, 1)), b = F32({5}, RandomFloats(5, 2));
  DeviceTensor i32(DType::kI32, {4});
  EXPECT_TRUE(IsInvalidArgument(Axpy(1, a.view(), b.view())));
  EXPECT_TRUE(IsInvalidArgument(Add(a.view(), b.view(), a.view())));
  EXPECT_TRUE(IsInvalidArgument(Axpy(1, i32.view(), a.view())));
  EXPECT_TRUE(IsInvalidArgument(Scale(i32.view(), 2)));
  EXPECT_TRUE(IsInvalidArgument(Sum(i32.view()).status()));
  EXPECT_TRUE(IsInvalidArgument(CopyTensor(a.view(), b.view())));
}

TEST_F(KernelsBlasValidation, RejectsNullDataAndNegativeDims) {
  TensorView null_data{nullptr, DType::kF32, {3}, device()};
  TensorView negative{reinterpret_cast<void*>(64), DType::kF32, {-1}, device()};
  EXPECT_TRUE(IsInvalidArgument(Scale(null_data, 2)));
  EXPECT_TRUE(IsInvalidArgument(Scale(negative, 2)));
  TensorView bad_dtype{reinterpret_cast<void*>(64), static_cast<DType>(200), {1}, device()};
  EXPECT_TRUE(IsInvalidArgument(Fill(bad_dtype, 0)));
}

// Only the GPU binary has a second device kind: compiled there, not skipped in the CPU
// binary (CI fails a run with skipped non-gpu tests).
#if TESSERA_KERNELS_TEST_CUDA
TEST_F(KernelsBlasValidation, RejectsMixedDevices) {
  std::vector<float> host(4, 1.0f);
  DeviceTensor a = F32({4}, host);
  TensorView h{host.data(), DType::kF32, {4}, Device::kCPU};
  EXPECT_TRUE(IsInvalidArgument(Axpy(1, h, a.view())));
}
#endif

}  // namespace
}  // namespace tessera::kernels::testing
