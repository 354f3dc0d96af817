// The optimizer reading its gradient scaled (grad_scale, the servers' 1/W of
// grad_reduce=mean) against what it replaces, bit for bit: Scale a copy of the gradient,
// then update from the copy. Every kind (and Nesterov momentum), with weight decay, over
// several steps, odd lengths (under a vector, past the CPU parallel grain), gradients
// with denormals, huge values and signed zeros, and scales 1/2, 1/3, 1/5, 1/7 (1/3 is
// inexact, so a multiply fused into the step's next FMA shows as a different rounding).
// ApplyOptimizer runs on the backend under test (CPU and, in kernels_gpu_test, CUDA);
// ApplyOptimizerRows and ApplyUpdateReadOnly (host memory, the servers') on the CPU.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/optimizer_step.h"
#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

constexpr float kScales[] = {1.0f / 2, 1.0f / 3, 1.0f / 5, 1.0f / 7};

struct Case {
  OptimizerKind kind;
  bool nesterov;
};

OptimizerConfig Config(const Case& c) {
  OptimizerConfig cfg;
  cfg.kind = c.kind;
  cfg.nesterov = c.nesterov;
  cfg.lr = 0.037f;
  cfg.weight_decay = 0.013f;
  cfg.momentum = 0.9f;
  cfg.initial_accumulator = 0.1f;
  return cfg;
}

// Mostly uniform values, with every 11th a denormal, every 13th huge, every 17th a signed zero.
std::vector<float> Gradient(int64_t n, uint64_t seed) {
  std::vector<float> g = RandomFloats(n, seed, -3.0f, 3.0f);
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (int64_t i = 0; i < n; ++i) {
    const float sign = (i + static_cast<int64_t>(seed)) % 2 ? -1.0f : 1.0f;
    if (i % 11 == 3) g[i] = sign * tiny * static_cast<float>(1 + (i * 7919) % 100000);
    if (i % 13 == 5) g[i] = sign * 1e30f * static_cast<float>(1 + i % 7);
    if (i % 17 == 9) g[i] = sign * 0.0f;
  }
  return g;
}

void ExpectSameBits(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0 && reported++ < 5) {
      ADD_FAILURE() << what << ": index " << i << ": folded " << got[i] << ", scaled copy " << want[i];
    }
  }
}

using ScaledRead = KernelTestP<Case>;

TEST_P(ScaledRead, ApplyOptimizerBitwiseScaleThenUpdate) {
  const OptimizerConfig cfg = Config(GetParam());
  const int nslots = NumOptimizerSlots(cfg.kind);
  for (const int64_t n : OddSizes()) {
    for (const float scale : kScales) {
      const std::string what = "n " + std::to_string(n) + " scale 1/" + std::to_string(std::lround(1 / scale));
      const std::vector<float> p0 = RandomFloats(n, 7 + n, -2.0f, 2.0f);
      DeviceTensor pf = F32({n}, p0), pc = F32({n}, p0);
      std::vector<DeviceTensor> sf, sc;
      for (int k = 0; k < nslots; ++k) {
        sf.emplace_back(DType::kF32, Shape{n});
        sc.emplace_back(DType::kF32, Shape{n});
      }
      std::vector<TensorView> vf, vc;
      for (int k = 0; k < nslots; ++k) {
        vf.push_back(sf[k].view());
        vc.push_back(sc[k].view());
      }
      ASSERT_OK(InitOptimizerSlots(cfg, vf));
      ASSERT_OK(InitOptimizerSlots(cfg, vc));
      for (int64_t step = 1; step <= 3; ++step) {
        const std::vector<float> g = Gradient(n, 100 * step + n);
        DeviceTensor gf = F32({n}, g), gc = F32({n}, g);
        ASSERT_OK(ApplyOptimizer(cfg, step, pf.view(), gf.view(), vf, scale));
        ASSERT_OK(Scale(gc.view(), scale));
        ASSERT_OK(ApplyOptimizer(cfg, step, pc.view(), gc.view(), vc));
        ExpectSameBits(gf.Download<float>(), g, what + ": the gradient was written");
      }
      ExpectSameBits(pf.Download<float>(), pc.Download<float>(), what + ": param");
      for (int k = 0; k < nslots; ++k) {
        ExpectSameBits(sf[k].Download<float>(), sc[k].Download<float>(), what + ": slot " + std::to_string(k));
      }
    }
  }
}

// The sparse rows' batched update and the dense read-only update (with a mirror, so
// blocked) take the scale the same way: bitwise their unscaled form on a scaled copy.
TEST_P(ScaledRead, RowsAndReadOnlyUpdateBitwiseScaleThenUpdate) {
  if (TestDevice() != Device::kCPU) GTEST_SKIP() << "host memory only: the CPU binary covers it";
  const OptimizerConfig cfg = Config(GetParam());
  const int nslots = NumOptimizerSlots(cfg.kind);
  for (const float scale : kScales) {
    for (const int64_t width : {1, 5, 16, 33}) {
      const int64_t nrows = 300, stride = width * (1 + nslots);
      std::vector<float> folded = RandomFloats(nrows * stride, 3 + width, -2.0f, 2.0f);
      for (float& x : folded) x = std::abs(x);  // slots non-negative (AdaGrad, Adam's v)
      std::vector<float> copied = folded;
      std::vector<float*> rf(nrows), rc(nrows);
      std::vector<int64_t> steps(nrows);
      for (int64_t r = 0; r < nrows; ++r) {
        rf[r] = folded.data() + r * stride;
        rc[r] = copied.data() + r * stride;
        steps[r] = 1 + r % 5;
      }
      std::vector<float> g = Gradient(nrows * width, 31 + width);
      const std::vector<float> sent = g;
      ASSERT_OK(ApplyOptimizerRows(cfg, width, rf, steps, g.data(), scale));
      ExpectSameBits(g, sent, "rows: the gradient was written");
      ASSERT_OK(Scale(TensorView{g.data(), DType::kF32, {nrows * width}, Device::kCPU}, scale));
      ASSERT_OK(ApplyOptimizerRows(cfg, width, rc, steps, g.data()));
      ExpectSameBits(folded, copied, "rows of width " + std::to_string(width));
    }
    for (const int64_t n : {int64_t{1}, int64_t{8193}, int64_t{20001}}) {
      std::vector<float> pf = RandomFloats(n, 5 + n, -2.0f, 2.0f), pc = pf;
      std::vector<float> sf(static_cast<size_t>(nslots * n)), sc(sf.size());
      ASSERT_OK(InitSlots(cfg, sf, static_cast<uint64_t>(n)));
      ASSERT_OK(InitSlots(cfg, sc, static_cast<uint64_t>(n)));
      std::vector<float> mf(static_cast<size_t>(n)), mc(mf.size());
      uint64_t gated = 0;
      const GradientGate gate = [&](uint64_t, uint64_t e) {
        gated = e;
        return Status::OK();
      };
      for (int64_t step = 1; step <= 2; ++step) {
        std::vector<float> g = Gradient(n, 17 * step + n);
        ASSERT_OK(ApplyUpdateReadOnly(cfg, step, pf, sf, g, mf, &gate, scale));
        ASSERT_OK(Scale(TensorView{g.data(), DType::kF32, {n}, Device::kCPU}, scale));
        ASSERT_OK(ApplyUpdate(cfg, step, pc, sc, g, mc));
      }
      EXPECT_EQ(gated, static_cast<uint64_t>(n));
      ExpectSameBits(pf, pc, "read-only update of " + std::to_string(n));
      ExpectSameBits(mf, mc, "read-only mirror of " + std::to_string(n));
      ExpectSameBits(sf, sc, "read-only slots of " + std::to_string(n));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryKind, ScaledRead,
                         ::testing::Values(Case{OptimizerKind::kSgd, false}, Case{OptimizerKind::kMomentum, false},
                                           Case{OptimizerKind::kMomentum, true}, Case{OptimizerKind::kAdaGrad, false},
                                           Case{OptimizerKind::kAdam, false}, Case{OptimizerKind::kAdamW, false}));

using ScaledReadRefusals = KernelTest;

// Clipping needs the scaled gradient first, and a non-finite scale is no mean.
TEST_F(ScaledReadRefusals, ClippingRowsAndNonFiniteScalesAreRefused) {
  OptimizerConfig cfg = Config({OptimizerKind::kSgd, false});
  std::vector<float> row = {1.0f, 2.0f}, g = {0.5f, 0.5f};
  const std::vector<float*> rows = {row.data()};
  const std::vector<int64_t> steps = {1};
  for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_TRUE(IsInvalidArgument(ApplyOptimizerRows(cfg, 2, rows, steps, g.data(), bad)));
    DeviceTensor p = F32({2}, row), gd = F32({2}, g);
    EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), gd.view(), {}, bad)));
  }
  cfg.clip_norm = 1.0f;
  const Status st = ApplyOptimizerRows(cfg, 2, rows, steps, g.data(), 0.5f);
  EXPECT_TRUE(IsInvalidArgument(st)) << st.ToString();
  EXPECT_EQ(row, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_OK(ApplyOptimizerRows(cfg, 2, rows, steps, g.data(), 1.0f));  // 1: no scale, clipping as before
}

}  // namespace
}  // namespace tessera::kernels::testing
