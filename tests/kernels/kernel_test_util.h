// Helpers for the kernels tests. The same test sources build twice: kernels_test runs
// them on the CPU backend (label unit), kernels_gpu_test on the CUDA backend (label gpu,
// built only with CUDA, every test skipped when no device is usable). Inputs are made on
// the host in double, copied to the device under test, and results copied back and
// compared with a double-precision reference written in the test.
//
// Error bounds used throughout (each test states which it applies):
//   kF32Rel = 1e-5 relative (+ an absolute floor scaled to the data) for f32 results of
//   O(1)-flop element math; sums and GEMM use the forward error bound
//   gamma_n = n * 2^-24 times the sum of magnitudes; casts must be exactly the correctly
//   rounded value (0.5 ulp: 2^-11 relative for f16, 2^-8 for bf16).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/tensor.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "tests/testutil/testutil.h"

#ifndef TESSERA_KERNELS_TEST_CUDA
#define TESSERA_KERNELS_TEST_CUDA 0
#endif

namespace tessera::kernels::testing {

inline constexpr double kF32Rel = 1e-5;
inline constexpr double kF32Eps = 1.0 / (1 << 24);  // unit roundoff of f32 (2^-24)

inline Device TestDevice() { return TESSERA_KERNELS_TEST_CUDA ? Device::kCUDA : Device::kCPU; }

// Memory on the device under test, with host round trips through CopyTensor.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(DType dtype, Shape shape, Device device = TestDevice())
      : dtype_(dtype), shape_(std::move(shape)), device_(device) {
    auto be = internal::BackendFor(device_);
    EXPECT_TRUE(be.ok()) << be.status().ToString();
    if (!be.ok()) return;
    auto buf = (*be)->allocate(nbytes());
    EXPECT_TRUE(buf.ok()) << buf.status().ToString();
    if (buf.ok()) buffer_ = std::move(buf).value();
  }

  template <typename T>
  static DeviceTensor From(DType dtype, Shape shape, const std::vector<T>& host,
                           Device device = TestDevice()) {
    DeviceTensor t(dtype, std::move(shape), device);
    t.Upload(host);
    return t;
  }

  template <typename T>
  void Upload(const std::vector<T>& host) {
    EXPECT_EQ(host.size() * sizeof(T), nbytes()) << "test bug: host size";
    TensorView src{const_cast<T*>(host.data()), dtype_, shape_, Device::kCPU};
    EXPECT_OK(CopyTensor(src, view()));
  }

  template <typename T>
  std::vector<T> Download() const {
    std::vector<T> host(nbytes() / sizeof(T));
    TensorView dst{host.data(), dtype_, shape_, Device::kCPU};
    EXPECT_OK(CopyTensor(view(), dst));
    return host;
  }

  // Sets every byte to 0xFF: NaN for f32/f16/bf16, -1 for integers. An element the op
  // fails to write then shows up as a mismatch.
  void Poison() {
    std::vector<uint8_t> junk(nbytes(), 0xFF);
    TensorView src{junk.data(), dtype_, shape_, Device::kCPU};
    EXPECT_OK(CopyTensor(src, view()));
  }

  TensorView view() const { return TensorView{buffer_.data(), dtype_, shape_, device_}; }
  size_t nbytes() const { return static_cast<size_t>(NumElements(shape_)) * DTypeSize(dtype_); }
  int64_t numel() const { return NumElements(shape_); }

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  Device device_ = Device::kCPU;
  Buffer buffer_;
};

inline DeviceTensor F32(Shape shape, const std::vector<float>& host) {
  return DeviceTensor::From(DType::kF32, std::move(shape), host);
}
inline DeviceTensor PoisonedF32(Shape shape) {
  DeviceTensor t(DType::kF32, std::move(shape));
  t.Poison();
  return t;
}

inline std::vector<float> RandomFloats(int64_t n, uint64_t seed, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// |got - want| <= rel * |want| + abs, element by element, with the index in the message.
inline void ExpectAllClose(const std::vector<float>& got, const std::vector<double>& want,
                           double rel, double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const bool ok = err <= rel * std::fabs(want[i]) + abs;  // false for NaN
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << what << ": mismatch at index " << i << ": got " << got[i] << ", want "
                    << want[i] << " (err " << err << ", bound "
                    << rel * std::fabs(want[i]) + abs << ")";
    }
  }
}

inline void ExpectClose(double got, double want, double rel, double abs, const std::string& what) {
  EXPECT_LE(std::fabs(got - want), rel * std::fabs(want) + abs)
      << what << ": got " << got << ", want " << want;
}

inline bool IsInvalidArgument(const Status& s) { return s.code() == StatusCode::kInvalidArgument; }

// Fixture: skips every test of the GPU binary when no CUDA device is usable.
class KernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (TestDevice() == Device::kCUDA && !CudaDeviceAvailable()) {
      GTEST_SKIP() << "no usable CUDA device (cudaGetDeviceCount failed or returned 0)";
    }
  }
  Device device() const { return TestDevice(); }
};

template <typename P>
class KernelTestP : public ::testing::TestWithParam<P> {
 protected:
  void SetUp() override {
    if (TestDevice() == Device::kCUDA && !CudaDeviceAvailable()) {
      GTEST_SKIP() << "no usable CUDA device (cudaGetDeviceCount failed or returned 0)";
    }
  }
  Device device() const { return TestDevice(); }
};

// Sizes that exercise: empty, scalar-ish, odd, just past a warp, a block, and the CPU
// parallel grain (65536) and GPU multi-block paths.
inline const std::vector<int64_t>& OddSizes() {
  static const std::vector<int64_t> k = {0, 1, 7, 33, 257, 1000, 70001};
  return k;
}

}  // namespace tessera::kernels::testing
