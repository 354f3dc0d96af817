// DLRM's pairwise dot interaction (PairwiseDot / PairwiseDotBackward) vs a naive double
// reference and vs central finite differences of a scalar loss.
// Bounds: each output is a D-term dot product (forward) or an (F-1)-term sum (backward):
// |err| <= n * 2^-24 * sum|terms| (gamma_n), checked per element.
#include "kernels/math/interaction.h"

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

using InterParam = std::tuple<int64_t, int64_t, int64_t>;  // B, F, D

class KernelsInteraction : public KernelTestP<InterParam> {};

TEST_P(KernelsInteraction, ForwardMatchesNaiveLowerTriangle) {
  const auto [b, f, d] = GetParam();
  const int64_t p = f * (f - 1) / 2;
  const auto x = RandomFloats(b * f * d, 11);
  DeviceTensor dx = F32({b, f, d}, x), out = PoisonedF32({b, p});
  ASSERT_OK(PairwiseDot(dx.view(), out.view()));
  const auto got = out.Download<float>();
  int64_t k = 0;
  for (int64_t e = 0; e < b; ++e) {
    // The documented order: (1,0), (2,0), (2,1), (3,0), ...
    for (int64_t i = 1; i < f; ++i) {
      for (int64_t j = 0; j < i; ++j, ++k) {
        double want = 0, mag = 0;
        for (int64_t t = 0; t < d; ++t) {
          const double term = static_cast<double>(x[(e * f + i) * d + t]) * x[(e * f + j) * d + t];
          want += term;
          mag += std::fabs(term);
        }
        ASSERT_LE(std::fabs(got[k] - want), (d + 1) * kF32Eps * mag + 1e-30)
            << "example " << e << " pair (" << i << ", " << j << ")";
      }
    }
  }
  EXPECT_EQ(k, b * p);
}

TEST_P(KernelsInteraction, BackwardMatchesNaiveAndFiniteDifferences) {
  const auto [b, f, d] = GetParam();
  const int64_t p = f * (f - 1) / 2;
  const auto x = RandomFloats(b * f * d, 21);
  const auto w = RandomFloats(b * p, 22);  // loss = sum w * out, so dout = w
  DeviceTensor dxv = F32({b, f, d}, x), dout = F32({b, p}, w), grad = PoisonedF32({b, f, d});
  ASSERT_OK(PairwiseDotBackward(dxv.view(), dout.view(), grad.view()));
  const auto got = grad.Download<float>();
  auto loss = [&](const std::vector<double>& xs) {
    double l = 0;
    for (int64_t e = 0; e < b; ++e) {
      for (int64_t i = 1; i < f; ++i) {
        for (int64_t j = 0; j < i; ++j) {
          double dot = 0;
          for (int64_t t = 0; t < d; ++t) dot += xs[(e * f + i) * d + t] * xs[(e * f + j) * d + t];
          l += w[e * p + math::PairIndex(i, j)] * dot;
        }
      }
    }
    return l;
  };
  std::vector<double> xd = ToDouble(x);
  for (int64_t e = 0; e < b; ++e) {
    for (int64_t i = 0; i < f; ++i) {
      for (int64_t t = 0; t < d; ++t) {
        const int64_t at = (e * f + i) * d + t;
        double want = 0, mag = 0;
        for (int64_t j = 0; j < f; ++j) {
          if (j == i) continue;
          const int64_t pi = i > j ? math::PairIndex(i, j) : math::PairIndex(j, i);
          const double term = static_cast<double>(w[e * p + pi]) * x[(e * f + j) * d + t];
          want += term;
          mag += std::fabs(term);
        }
        ASSERT_LE(std::fabs(got[at] - want), f * kF32Eps * mag + 1e-30)
            << "x[" << e << ", " << i << ", " << t << "]";
        if (b * f * d <= 200) {  // finite differences on the small shapes (the loss is quadratic:
                                 // exact up to rounding)
          const double h = 1e-3;
          std::vector<double> plus = xd, minus = xd;
          plus[at] += h;
          minus[at] -= h;
          EXPECT_NEAR(got[at], (loss(plus) - loss(minus)) / (2 * h), 1e-4)
              << "finite difference at " << at;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KernelsInteraction,
                         ::testing::Values(InterParam{1, 2, 1}, InterParam{3, 4, 5},
                                           InterParam{2, 27, 3}, InterParam{64, 27, 16},
                                           InterParam{0, 27, 16}));

class KernelsInteractionValidation : public KernelTest {};

TEST_F(KernelsInteractionValidation, RejectsBadShapesAndWritesNothing) {
  DeviceTensor x = F32({2, 3, 4}, RandomFloats(24, 1));
  DeviceTensor out = PoisonedF32({2, 3});
  DeviceTensor wrong = PoisonedF32({2, 4});
  EXPECT_TRUE(IsInvalidArgument(PairwiseDot(x.view(), wrong.view())));
  DeviceTensor one = F32({2, 1, 4}, RandomFloats(8, 2));
  DeviceTensor none = PoisonedF32({2, 0});
  EXPECT_TRUE(IsInvalidArgument(PairwiseDot(one.view(), none.view())));
  DeviceTensor flat = F32({2, 12}, RandomFloats(24, 3));
  EXPECT_TRUE(IsInvalidArgument(PairwiseDot(flat.view(), out.view())));
  DeviceTensor dx_wrong = PoisonedF32({2, 3, 5});
  EXPECT_TRUE(IsInvalidArgument(PairwiseDotBackward(x.view(), out.view(), dx_wrong.view())));
  EXPECT_TRUE(
      IsInvalidArgument(PairwiseDotBackward(x.view(), out.view(), x.view())));  // dx aliases x
  for (float v : wrong.Download<float>()) EXPECT_TRUE(std::isnan(v));
  for (float v : dx_wrong.Download<float>()) EXPECT_TRUE(std::isnan(v));
}

TEST(KernelsInteractionMath, PairAtInvertsPairIndex) {
  for (int64_t i = 1; i < 40; ++i) {
    for (int64_t j = 0; j < i; ++j) {
      int64_t a, b;
      math::PairAt(math::PairIndex(i, j), &a, &b);
      ASSERT_EQ(a, i);
      ASSERT_EQ(b, j);
    }
  }
}

}  // namespace
}  // namespace tessera::kernels::testing
