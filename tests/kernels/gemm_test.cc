// GEMM vs a double triple loop. Bound per element: |c - c_ref| <= gamma * (|alpha| |op(A)|
// |op(B)| + |beta| |C0|)_ij with gamma = (K + 2) * 2^-24 (the standard forward error bound
// of a dot product of length K in f32), plus 1e-30 for exact zeros.
#include <tuple>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

std::string CaseName(const GemmCase& c) {
  return "m" + std::to_string(c.m) + "n" + std::to_string(c.n) + "k" + std::to_string(c.k) +
         (c.ta ? "T" : "N") + (c.tb ? "T" : "N") + "_a" + std::to_string(c.alpha) + "_b" +
         std::to_string(c.beta);
}

void PrintTo(const GemmCase& c, std::ostream* os) { *os << CaseName(c); }

class KernelsGemm : public KernelTestP<GemmCase> {};

TEST_P(KernelsGemm, MatchesDoubleReference) {
  const GemmCase& p = GetParam();
  const Shape a_shape = p.ta ? Shape{p.k, p.m} : Shape{p.m, p.k};
  const Shape b_shape = p.tb ? Shape{p.n, p.k} : Shape{p.k, p.n};
  const auto a = RandomFloats(p.m * p.k, 100 + p.m);
  const auto b = RandomFloats(p.k * p.n, 200 + p.n);
  auto c0 = RandomFloats(p.m * p.n, 300 + p.k);
  if (p.beta == 0.0f) std::fill(c0.begin(), c0.end(), std::numeric_limits<float>::quiet_NaN());
  auto at = [&](int64_t i, int64_t l) { return p.ta ? a[l * p.m + i] : a[i * p.k + l]; };
  auto bt = [&](int64_t l, int64_t j) { return p.tb ? b[j * p.k + l] : b[l * p.n + j]; };
  std::vector<double> want(p.m * p.n), bound(p.m * p.n);
  const double gamma = (p.k + 2) * kF32Eps;
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      double s = 0, mag = 0;
      for (int64_t l = 0; l < p.k; ++l) {
        s += double(at(i, l)) * bt(l, j);
        mag += std::fabs(double(at(i, l)) * bt(l, j));
      }
      const double c_old = p.beta == 0.0f ? 0.0 : c0[i * p.n + j];
      want[i * p.n + j] = p.alpha * s + p.beta * c_old;
      bound[i * p.n + j] = gamma * (std::fabs(p.alpha) * mag + std::fabs(p.beta * c_old)) + 1e-30;
    }
  }
  DeviceTensor da = F32(a_shape, a), db = F32(b_shape, b), dc = F32({p.m, p.n}, c0);
  ASSERT_OK(Gemm(p.ta, p.tb, p.alpha, da.view(), db.view(), p.beta, dc.view()));
  const auto got = dc.Download<float>();
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(got[i] - want[i]);
    if (!(err <= bound[i]) && failures++ < 5) {
      ADD_FAILURE() << CaseName(p) << ": mismatch at " << i << ": got " << got[i] << ", want "
                    << want[i] << ", bound " << bound[i];
    }
  }
}

std::vector<GemmCase> Cases() {
  std::vector<GemmCase> cases;
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> dims = {
      {1, 1, 1}, {7, 1, 33}, {1, 33, 7}, {33, 7, 1}, {33, 257, 7}, {64, 64, 64}, {257, 33, 130},
      {0, 5, 3}, {5, 0, 3}, {5, 3, 0}};
  for (auto [m, n, k] : dims) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) cases.push_back({m, n, k, ta, tb, 1.0f, 0.0f});
    }
    cases.push_back({m, n, k, false, false, -0.5f, 2.0f});
    cases.push_back({m, n, k, true, true, 1.5f, 1.0f});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, KernelsGemm, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<GemmCase>& info) {
                           std::string s = CaseName(info.param);
                           for (char& ch : s) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return s + "_" + std::to_string(info.index);
                         });

class KernelsGemmValidation : public KernelTest {};

TEST_F(KernelsGemmValidation, RejectsInnerDimensionMismatch) {
  DeviceTensor a(DType::kF32, {2, 3}), b(DType::kF32, {4, 5}), c(DType::kF32, {2, 5});
  const Status s = Gemm(false, false, 1, a.view(), b.view(), 0, c.view());
  EXPECT_TRUE(IsInvalidArgument(s)) << s.ToString();
}

TEST_F(KernelsGemmValidation, RejectsWrongOutputShapeRankAndDtype) {
  DeviceTensor a(DType::kF32, {2, 3}), b(DType::kF32, {3, 5}), c(DType::kF32, {5, 2});
  EXPECT_TRUE(IsInvalidArgument(Gemm(false, false, 1, a.view(), b.view(), 0, c.view())));
  DeviceTensor v(DType::kF32, {6});
  DeviceTensor c2(DType::kF32, {2, 5});
  EXPECT_TRUE(IsInvalidArgument(Gemm(false, false, 1, v.view(), b.view(), 0, c2.view())));
  DeviceTensor h(DType::kF16, {2, 3});
  EXPECT_TRUE(IsInvalidArgument(Gemm(false, false, 1, h.view(), b.view(), 0, c2.view())));
}

}  // namespace
}  // namespace tessera::kernels::testing
