// Central finite differences for gradient tests: perturb one f32 element by +-eps,
// evaluate a double-valued objective, compare with the analytic gradient.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace tessera::model::testing {

struct GradCheckOptions {
  double eps = 1e-2;
  double atol = 1e-3;
  double rtol = 1e-2;
};

// For every i in [0, n): numeric = (L(v_i + eps) - L(v_i - eps)) / (2 eps), compared
// with analytic[i]. Restores values[i]. Reports mismatches with `what` and the index.
inline void ExpectGradientMatches(const std::string& what, float* values,
                                  const std::vector<float>& analytic,
                                  const std::function<double()>& loss,
                                  const GradCheckOptions& o = {}) {
  ASSERT_FALSE(analytic.empty()) << what;
  double max_abs = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const float saved = values[i];
    values[i] = static_cast<float>(saved + o.eps);
    const double plus = loss();
    values[i] = static_cast<float>(saved - o.eps);
    const double minus = loss();
    values[i] = saved;
    // Divide by the step actually taken in f32.
    const double step = static_cast<double>(static_cast<float>(saved + o.eps)) -
                        static_cast<double>(static_cast<float>(saved - o.eps));
    const double numeric = (plus - minus) / step;
    EXPECT_NEAR(analytic[i], numeric, o.atol + o.rtol * std::abs(numeric))
        << what << " index " << i;
    max_abs = std::max(max_abs, std::abs(numeric));
  }
  // A check of an all-zero gradient proves little: require some signal.
  EXPECT_GT(max_abs, 1e-3) << what << ": numeric gradient is ~0 everywhere";
}

inline std::vector<float> Copy(const float* p, int64_t n) { return std::vector<float>(p, p + n); }

}  // namespace tessera::model::testing
