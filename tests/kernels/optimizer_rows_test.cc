// ApplyOptimizerRows (the servers' batched sparse update, host memory only) against the
// per-row reference it must equal bit for bit: ClipByNorm, then ApplyOptimizer, row by
// row. Rows of several widths (under and over a vector, odd), block boundaries (256
// rows), every kind, with and without clipping, and each row at its own update count.
#include <cmath>
#include <cstring>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

TensorView HostView(float* p, int64_t n) { return TensorView{p, DType::kF32, {n}, Device::kCPU}; }

struct Case {
  OptimizerKind kind;
  float clip;
};

class OptimizerRows : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (TESSERA_KERNELS_TEST_CUDA) GTEST_SKIP() << "host rows only: the CPU binary covers it";
  }
};

TEST_P(OptimizerRows, BitwiseEqualToClipThenApplyOptimizerPerRow) {
  OptimizerConfig cfg;
  cfg.kind = GetParam().kind;
  cfg.lr = 0.05f;
  cfg.weight_decay = 0.01f;
  cfg.momentum = 0.9f;
  cfg.clip_norm = GetParam().clip;
  const int nslots = NumOptimizerSlots(cfg.kind);
  for (const int64_t width : {1, 7, 16, 33}) {
    const int64_t nrows = 600;  // three blocks, the last one partial
    const int64_t stride = width * (1 + nslots);
    std::vector<float> batched = RandomFloats(nrows * stride, 11 + width, -2.0f, 2.0f);
    // Slots non-negative (AdaGrad's accumulator, Adam's second moment must be).
    for (int64_t r = 0; r < nrows; ++r) {
      for (int64_t k = width; k < stride; ++k) batched[r * stride + k] = std::abs(batched[r * stride + k]);
    }
    std::vector<float> single = batched;
    const std::vector<float> grad0 = RandomFloats(nrows * width, 99 + width, -3.0f, 3.0f);
    std::vector<float> grad = grad0;
    std::vector<float*> rows(nrows);
    std::vector<int64_t> steps(nrows);
    for (int64_t r = 0; r < nrows; ++r) {
      rows[r] = batched.data() + r * stride;
      steps[r] = 1 + (r * 7919) % 13 + (r / 40);  // runs of equal counts and changes
    }
    ASSERT_TRUE(ApplyOptimizerRows(cfg, width, rows, steps, grad.data()).ok());
    int64_t differ = 0;
    for (int64_t r = 0; r < nrows; ++r) {
      std::vector<float> g(grad0.begin() + r * width, grad0.begin() + (r + 1) * width);
      if (cfg.clip_norm > 0) {
        ASSERT_TRUE(ClipByNorm(HostView(g.data(), width), cfg.clip_norm).ok());
      }
      float* p = single.data() + r * stride;
      std::vector<TensorView> slots;
      for (int k = 0; k < nslots; ++k) slots.push_back(HostView(p + (k + 1) * width, width));
      ASSERT_TRUE(ApplyOptimizer(cfg, steps[r], HostView(p, width), HostView(g.data(), width), slots).ok());
      // The clipped gradient is left in place, as ClipByNorm leaves it.
      differ += std::memcmp(g.data(), grad.data() + r * width, width * sizeof(float)) != 0;
    }
    EXPECT_EQ(differ, 0) << "width " << width;
    EXPECT_EQ(std::memcmp(batched.data(), single.data(), batched.size() * sizeof(float)), 0) << "width " << width;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, OptimizerRows,
                         ::testing::Values(Case{OptimizerKind::kSgd, 0}, Case{OptimizerKind::kSgd, 1.5f},
                                           Case{OptimizerKind::kMomentum, 0}, Case{OptimizerKind::kAdaGrad, 0},
                                           Case{OptimizerKind::kAdaGrad, 1.5f}, Case{OptimizerKind::kAdam, 0},
                                           Case{OptimizerKind::kAdam, 1.5f}, Case{OptimizerKind::kAdamW, 0}));

TEST(OptimizerRowsRefusals, ABadCountAnywhereChangesNoRow) {
  if (TESSERA_KERNELS_TEST_CUDA) GTEST_SKIP() << "host rows only";
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kSgd;
  cfg.lr = 0.1f;
  std::vector<float> values(4 * 300, 1.0f), grad(4 * 300, 1.0f);
  std::vector<float*> rows(300);
  std::vector<int64_t> steps(300, 1);
  for (int r = 0; r < 300; ++r) rows[r] = values.data() + 4 * r;
  steps[290] = 0;  // in the second block: the first block must not have been applied
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizerRows(cfg, 4, rows, steps, grad.data())));
  EXPECT_EQ(values, std::vector<float>(4 * 300, 1.0f));
}

}  // namespace
}  // namespace tessera::kernels::testing
