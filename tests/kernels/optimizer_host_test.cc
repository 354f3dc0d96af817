// kernels::ApplyOptimizerHost, the servers' dense update (kernels/optimizer_step.cc):
// bitwise the update a row of ApplyOptimizerRows gets (ops.h says a row's bits are
// ApplyOptimizer's), for every kind, scaled and not, at lengths around the vector widths.
// On a CPU with AVX2 the two run different loops (cpu_optimizer.cc's LoopsAvx2 and the
// baseline SSE2 rows), so this pins the wide loop to the baseline's rounding: no FMA,
// no reordering.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/param_spec.h"
#include "kernels/ops.h"

namespace tessera::kernels {
namespace {

std::vector<float> Random(size_t n, std::mt19937* rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(*rng);
  return v;
}

TEST(OptimizerHost, BitwiseTheBaselineRowUpdate) {
  std::mt19937 rng(39);
  const OptimizerKind kinds[] = {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kAdaGrad,
                                 OptimizerKind::kAdam, OptimizerKind::kAdamW};
  for (OptimizerKind kind : kinds) {
    for (float scale : {1.0f, 1.0f / 3.0f}) {
      for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 1024, 1031, 4099}) {
        OptimizerConfig cfg;
        cfg.kind = kind;
        cfg.lr = 0.037f;
        cfg.weight_decay = 0.013f;
        cfg.nesterov = n % 2 == 1;
        const int k = NumOptimizerSlots(kind);
        // The row layout: values, then each slot; the host call gets the same numbers.
        std::vector<float> row = Random(static_cast<size_t>(n * (k + 1)), &rng, -1.0f, 1.0f);
        for (int64_t i = n; i < n * (k + 1); ++i) row[i] = std::fabs(row[i]) + 0.01f;  // AdaGrad/Adam v > 0
        std::vector<float> host = row;
        for (int64_t step = 1; step <= 3; ++step) {
          const std::vector<float> grad = Random(static_cast<size_t>(n), &rng, -2.0f, 2.0f);
          std::vector<float> g_row = grad;  // ApplyOptimizerRows may clip in place (not here: clip_norm 0)
          float* rows[1] = {row.data()};
          const int64_t steps[1] = {step};
          ASSERT_TRUE(ApplyOptimizerRows(cfg, n, rows, steps, g_row.data(), scale).ok());
          float* s0 = k > 0 ? host.data() + n : nullptr;
          float* s1 = k > 1 ? host.data() + 2 * n : nullptr;
          ASSERT_TRUE(ApplyOptimizerHost(cfg, step, host.data(), grad.data(), s0, s1, n, scale).ok());
          ASSERT_EQ(0, std::memcmp(row.data(), host.data(), row.size() * sizeof(float)))
              << "kind " << static_cast<int>(kind) << ", scale " << scale << ", n " << n << ", step " << step;
        }
      }
    }
  }
}

TEST(OptimizerHost, RefusesWhatApplyOptimizerRefusesAndChangesNothing) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kMomentum;
  std::vector<float> p(8, 1.0f), g(8, 0.5f), v(8, 0.0f);
  const std::vector<float> before = p;
  EXPECT_EQ(ApplyOptimizerHost(cfg, 0, p.data(), g.data(), v.data(), nullptr, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyOptimizerHost(cfg, 1, p.data(), g.data(), v.data(), nullptr, 8, NAN).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyOptimizerHost(cfg, 1, p.data(), g.data(), nullptr, nullptr, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyOptimizerHost(cfg, 1, p.data(), g.data(), v.data(), nullptr, -1).code(), StatusCode::kInvalidArgument);
  cfg.lr = INFINITY;
  EXPECT_EQ(ApplyOptimizerHost(cfg, 1, p.data(), g.data(), v.data(), nullptr, 8).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p, before);
  cfg.lr = 0.5f;
  ASSERT_TRUE(ApplyOptimizerHost(cfg, 1, p.data(), g.data(), v.data(), nullptr, 8).ok());
  EXPECT_EQ(p[7], 1.0f - 0.5f * 0.5f);  // v = 0.9 * 0 + 0.5; p -= lr * v
  EXPECT_TRUE(ApplyOptimizerHost(cfg, 1, nullptr, nullptr, nullptr, nullptr, 0).ok());  // nothing to do
}

}  // namespace
}  // namespace tessera::kernels
