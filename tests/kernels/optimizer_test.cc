// Fused optimizer updates vs a double-precision reference run for several steps with a
// fresh random gradient each step. Bound: kF32Rel relative to the parameter plus 1e-6
// absolute per step (float rounding of O(10) flops per element per step, compounded).
#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

// The reference: the update rules of ops.h, written independently in double.
struct RefState {
  std::vector<double> p, s0, s1;
};

void RefStep(const OptimizerConfig& c, int64_t t, const std::vector<float>& grad, RefState* st) {
  const double lr = c.lr, wd = c.weight_decay, mu = c.momentum, b1 = c.beta1, b2 = c.beta2,
               eps = c.eps;
  for (size_t i = 0; i < st->p.size(); ++i) {
    double& p = st->p[i];
    double g = grad[i];
    switch (c.kind) {
      case OptimizerKind::kSgd:
        g += wd * p;
        p -= lr * g;
        break;
      case OptimizerKind::kMomentum: {
        g += wd * p;
        double& v = st->s0[i];
        v = mu * v + g;
        p -= lr * (c.nesterov ? g + mu * v : v);
        break;
      }
      case OptimizerKind::kAdaGrad: {
        g += wd * p;
        double& acc = st->s0[i];
        acc += g * g;
        p -= lr * g / (std::sqrt(acc) + eps);
        break;
      }
      case OptimizerKind::kAdam:
      case OptimizerKind::kAdamW: {
        const bool decoupled = c.kind == OptimizerKind::kAdamW;
        if (!decoupled) g += wd * p;
        double& m = st->s0[i];
        double& v = st->s1[i];
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        const double mhat = m / (1 - std::pow(b1, double(t)));
        const double vhat = v / (1 - std::pow(b2, double(t)));
        const double p_old = p;
        p -= lr * mhat / (std::sqrt(vhat) + eps);
        if (decoupled) p -= lr * wd * p_old;
        break;
      }
    }
  }
}

struct OptCase {
  std::string name;
  OptimizerConfig cfg;
};
void PrintTo(const OptCase& c, std::ostream* os) { *os << c.name; }

OptimizerConfig Make(OptimizerKind k, float lr, float wd, bool nesterov = false) {
  OptimizerConfig c;
  c.kind = k;
  c.lr = lr;
  c.weight_decay = wd;
  c.nesterov = nesterov;
  c.initial_accumulator = 0.1f;
  return c;
}

class KernelsOptimizer : public KernelTestP<std::tuple<OptCase, int64_t>> {};

TEST_P(KernelsOptimizer, SeveralStepsMatchDoubleReference) {
  const auto& [oc, n] = GetParam();
  const OptimizerConfig& cfg = oc.cfg;
  const int slots = NumOptimizerSlots(cfg.kind);
  const auto p0 = RandomFloats(n, 1, -2, 2);
  DeviceTensor param = F32({n}, p0);
  std::vector<DeviceTensor> slot_tensors;
  for (int s = 0; s < slots; ++s) slot_tensors.push_back(PoisonedF32({n}));  // Init must fill
  std::vector<TensorView> slot_views;
  for (auto& s : slot_tensors) slot_views.push_back(s.view());
  ASSERT_OK(InitOptimizerSlots(cfg, slot_views));

  RefState ref;
  ref.p = ToDouble(p0);
  const double init = cfg.kind == OptimizerKind::kAdaGrad ? cfg.initial_accumulator : 0.0;
  ref.s0.assign(n, init);
  ref.s1.assign(n, 0.0);

  constexpr int kSteps = 5;
  for (int64_t t = 1; t <= kSteps; ++t) {
    const auto g = RandomFloats(n, 1000 + t, -1, 1);
    DeviceTensor grad = F32({n}, g);
    ASSERT_OK(ApplyOptimizer(cfg, t, param.view(), grad.view(), slot_views));
    RefStep(cfg, t, g, &ref);
    // grad is read only.
    ExpectAllClose(grad.Download<float>(), ToDouble(g), 0, 0, oc.name + " grad untouched");
  }
  ExpectAllClose(param.Download<float>(), ref.p, kF32Rel, 1e-6 * kSteps, oc.name + " param");
  if (slots >= 1) {
    ExpectAllClose(slot_tensors[0].Download<float>(), ref.s0, kF32Rel, 1e-6 * kSteps,
                   oc.name + " slot 0");
  }
  if (slots >= 2) {
    ExpectAllClose(slot_tensors[1].Download<float>(), ref.s1, kF32Rel, 1e-6 * kSteps,
                   oc.name + " slot 1");
  }
}

std::vector<OptCase> OptCases() {
  using K = OptimizerKind;
  return {
      {"sgd", Make(K::kSgd, 0.1f, 0)},
      {"sgd_wd", Make(K::kSgd, 0.1f, 0.01f)},
      {"momentum", Make(K::kMomentum, 0.05f, 0)},
      {"momentum_nesterov", Make(K::kMomentum, 0.05f, 0, true)},
      {"momentum_nesterov_wd", Make(K::kMomentum, 0.05f, 0.02f, true)},
      {"adagrad", Make(K::kAdaGrad, 0.1f, 0)},
      {"adagrad_wd", Make(K::kAdaGrad, 0.1f, 0.01f)},
      {"adam", Make(K::kAdam, 0.01f, 0)},
      {"adam_l2", Make(K::kAdam, 0.01f, 0.1f)},
      {"adamw", Make(K::kAdamW, 0.01f, 0.1f)},
  };
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, KernelsOptimizer,
    ::testing::Combine(::testing::ValuesIn(OptCases()), ::testing::Values(0, 1, 7, 257, 70001)),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_n" + std::to_string(std::get<1>(info.param));
    });

class KernelsOptimizerSemantics : public KernelTest {};

// AdamW's decay is decoupled: with a zero gradient, Adam(L2) still moves (the decay enters
// m and v and is normalised), AdamW moves by exactly lr * wd * p.
TEST_F(KernelsOptimizerSemantics, AdamWDecayIsDecoupledFromTheMoments) {
  const int64_t n = 33;
  const auto p0 = RandomFloats(n, 3, 0.5f, 2.0f);
  const std::vector<float> zeros(n, 0.0f);
  OptimizerConfig cfg = Make(OptimizerKind::kAdamW, 0.1f, 0.5f);
  DeviceTensor param = F32({n}, p0), grad = F32({n}, zeros), m = F32({n}, zeros),
               v = F32({n}, zeros);
  std::vector<TensorView> slots = {m.view(), v.view()};
  ASSERT_OK(ApplyOptimizer(cfg, 1, param.view(), grad.view(), slots));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = p0[i] * (1.0 - 0.1 * 0.5);
  ExpectAllClose(param.Download<float>(), want, kF32Rel, 0, "AdamW param");
  ExpectAllClose(m.Download<float>(), std::vector<double>(n, 0.0), 0, 0, "AdamW m stays 0");
  ExpectAllClose(v.Download<float>(), std::vector<double>(n, 0.0), 0, 0, "AdamW v stays 0");
}

TEST_F(KernelsOptimizerSemantics, AdamBiasCorrectionMakesTheFirstStepLrSized) {
  // Step 1 with bias correction: mhat = g, vhat = g^2, update = lr * g / (|g| + eps).
  const int64_t n = 7;
  const std::vector<float> g = {1, -2, 3, -4, 0.5f, -0.25f, 8};
  const std::vector<float> zeros(n, 0.0f);
  OptimizerConfig cfg = Make(OptimizerKind::kAdam, 0.01f, 0);
  DeviceTensor param = F32({n}, zeros), grad = F32({n}, g), m = F32({n}, zeros), v = F32({n}, zeros);
  std::vector<TensorView> slots = {m.view(), v.view()};
  ASSERT_OK(ApplyOptimizer(cfg, 1, param.view(), grad.view(), slots));
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = g[i] > 0 ? -0.01 : 0.01;
  ExpectAllClose(param.Download<float>(), want, 1e-5, 1e-9, "first Adam step");
}

TEST_F(KernelsOptimizerSemantics, InitSetsAdaGradAccumulatorAndZeroesOthers) {
  OptimizerConfig cfg = Make(OptimizerKind::kAdaGrad, 0.1f, 0);
  cfg.initial_accumulator = 0.25f;
  DeviceTensor acc = PoisonedF32({9});
  std::vector<TensorView> slots = {acc.view()};
  ASSERT_OK(InitOptimizerSlots(cfg, slots));
  ExpectAllClose(acc.Download<float>(), std::vector<double>(9, 0.25), 0, 0, "acc");
  cfg.kind = OptimizerKind::kAdam;
  DeviceTensor m = PoisonedF32({9}), v = PoisonedF32({9});
  std::vector<TensorView> adam_slots = {m.view(), v.view()};
  ASSERT_OK(InitOptimizerSlots(cfg, adam_slots));
  ExpectAllClose(m.Download<float>(), std::vector<double>(9, 0.0), 0, 0, "m");
  ExpectAllClose(v.Download<float>(), std::vector<double>(9, 0.0), 0, 0, "v");
}

TEST_F(KernelsOptimizerSemantics, RejectsBadSlotsStepAndShapes) {
  OptimizerConfig cfg = Make(OptimizerKind::kAdam, 0.01f, 0);
  DeviceTensor p(DType::kF32, {8}), g(DType::kF32, {8}), m(DType::kF32, {8}), v(DType::kF32, {8});
  DeviceTensor short_v(DType::kF32, {7}), g7(DType::kF32, {7}), h(DType::kF16, {8});
  std::vector<TensorView> one = {m.view()};
  std::vector<TensorView> two = {m.view(), v.view()};
  std::vector<TensorView> bad_len = {m.view(), short_v.view()};
  std::vector<TensorView> bad_dtype = {m.view(), h.view()};
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g.view(), one)));
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 0, p.view(), g.view(), two)));
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g7.view(), two)));
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g.view(), bad_len)));
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g.view(), bad_dtype)));
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, h.view(), g.view(), two)));
  cfg.beta1 = 1.0f;
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g.view(), two)));
  cfg = Make(static_cast<OptimizerKind>(9), 0.1f, 0);
  EXPECT_TRUE(IsInvalidArgument(ApplyOptimizer(cfg, 1, p.view(), g.view(), {})));
  EXPECT_TRUE(IsInvalidArgument(InitOptimizerSlots(Make(OptimizerKind::kSgd, 0.1f, 0), one)));
}

}  // namespace
}  // namespace tessera::kernels::testing
