// Fused bias + activation and the losses vs double references.
// Bounds: activations and their gradients within kF32Rel relative + 1e-6 absolute (tanh
// and exp in f32 are within a few ulp); column sums (dbias) and mean losses within
// kF32Rel relative + rows * 2^-24 * mean magnitude; softmax gradients within kF32Rel
// relative + 1e-6/N absolute.
#include <tuple>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

double RefAct(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kRelu: return x > 0 ? x : 0;
    case Activation::kGelu: {
      const double k = std::sqrt(2.0 / M_PI);
      return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
    }
  }
  return 0;
}

double RefActGrad(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity: return 1;
    case Activation::kRelu: return x > 0 ? 1 : 0;
    case Activation::kGelu: {
      const double k = std::sqrt(2.0 / M_PI);
      const double t = std::tanh(k * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
  }
  return 0;
}

std::string ActName(Activation a) {
  return a == Activation::kIdentity ? "identity" : a == Activation::kRelu ? "relu" : "gelu";
}

using BiasActParam = std::tuple<Activation, int64_t, int64_t, bool>;  // act, rows, cols, bias
class KernelsBiasActivation : public KernelTestP<BiasActParam> {};

TEST_P(KernelsBiasActivation, ForwardAndBackwardMatchReference) {
  const auto [act, rows, cols, with_bias] = GetParam();
  const int64_t n = rows * cols;
  const auto x = RandomFloats(n, 1, -3, 3);
  const auto bias = RandomFloats(cols, 2);
  const auto dy = RandomFloats(n, 3);
  DeviceTensor dx = F32({rows, cols}, x), db = F32({cols}, bias), ddy = F32({rows, cols}, dy);
  const TensorView bias_view = with_bias ? db.view() : TensorView{};
  DeviceTensor y = PoisonedF32({rows, cols});
  ASSERT_OK(BiasActivationForward(act, dx.view(), bias_view, y.view()));

  std::vector<double> want_y(n), want_dpre(n), want_dbias(cols, 0.0), mag(cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const double pre = double(x[r * cols + c]) + (with_bias ? double(bias[c]) : 0.0);
      want_y[r * cols + c] = RefAct(act, pre);
      const double d = dy[r * cols + c] * RefActGrad(act, pre);
      want_dpre[r * cols + c] = d;
      want_dbias[c] += d;
      mag[c] += std::fabs(d);
    }
  }
  const std::string what = ActName(act) + " " + std::to_string(rows) + "x" + std::to_string(cols);
  ExpectAllClose(y.Download<float>(), want_y, kF32Rel, 1e-6, what + " y");

  DeviceTensor dpre = PoisonedF32({rows, cols}), dbias = PoisonedF32({cols});
  ASSERT_OK(BiasActivationBackward(act, ddy.view(), dx.view(), bias_view, dpre.view(),
                                   dbias.view()));
  ExpectAllClose(dpre.Download<float>(), want_dpre, kF32Rel, 1e-6, what + " dpre");
  const auto got_dbias = dbias.Download<float>();
  ASSERT_EQ(got_dbias.size(), static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) {
    ExpectClose(got_dbias[c], want_dbias[c], kF32Rel, 1e-6 * mag[c] + 1e-7,
                what + " dbias[" + std::to_string(c) + "]");
  }

  // In place: y aliases x, dpre aliases dy, dbias absent.
  DeviceTensor x2 = F32({rows, cols}, x), dy2 = F32({rows, cols}, dy);
  ASSERT_OK(BiasActivationBackward(act, dy2.view(), x2.view(), bias_view, dy2.view(), TensorView{}));
  ExpectAllClose(dy2.Download<float>(), want_dpre, kF32Rel, 1e-6, what + " dpre in place");
  ASSERT_OK(BiasActivationForward(act, x2.view(), bias_view, x2.view()));
  ExpectAllClose(x2.Download<float>(), want_y, kF32Rel, 1e-6, what + " y in place");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelsBiasActivation,
    ::testing::Combine(::testing::Values(Activation::kIdentity, Activation::kRelu,
                                         Activation::kGelu),
                       ::testing::Values(0, 1, 7, 257, 1100), ::testing::Values(1, 33, 130),
                       ::testing::Bool()),
    [](const auto& info) {
      return ActName(std::get<0>(info.param)) + "_r" + std::to_string(std::get<1>(info.param)) +
             "_c" + std::to_string(std::get<2>(info.param)) +
             (std::get<3>(info.param) ? "_bias" : "_nobias");
    });

class KernelsNn : public KernelTest {};

TEST_F(KernelsNn, BiasActivationBackwardOfEmptyBatchZeroesDbias) {
  DeviceTensor x(DType::kF32, {0, 5}), dy(DType::kF32, {0, 5}), dpre(DType::kF32, {0, 5});
  DeviceTensor dbias = PoisonedF32({5});
  ASSERT_OK(BiasActivationBackward(Activation::kRelu, dy.view(), x.view(), TensorView{},
                                   dpre.view(), dbias.view()));
  ExpectAllClose(dbias.Download<float>(), std::vector<double>(5, 0.0), 0, 0, "dbias");
}

TEST_F(KernelsNn, BiasActivationRejectsBadShapes) {
  DeviceTensor x(DType::kF32, {4, 3}), y(DType::kF32, {3, 4}), bias(DType::kF32, {4});
  DeviceTensor y_ok(DType::kF32, {4, 3});
  EXPECT_TRUE(IsInvalidArgument(BiasActivationForward(Activation::kRelu, x.view(), TensorView{}, y.view())));
  EXPECT_TRUE(IsInvalidArgument(BiasActivationForward(Activation::kRelu, x.view(), bias.view(), y_ok.view())));
  EXPECT_TRUE(IsInvalidArgument(
      BiasActivationForward(static_cast<Activation>(7), x.view(), TensorView{}, y_ok.view())));
  DeviceTensor v(DType::kF32, {12});
  EXPECT_TRUE(IsInvalidArgument(BiasActivationForward(Activation::kRelu, v.view(), TensorView{}, v.view())));
}

struct XentRef {
  double loss = 0;
  std::vector<double> grad;
};

XentRef RefSoftmaxXent(const std::vector<float>& x, const std::vector<int32_t>& labels,
                       int64_t n, int64_t c) {
  XentRef r;
  r.grad.resize(n * c);
  for (int64_t i = 0; i < n; ++i) {
    double m = -INFINITY;
    for (int64_t j = 0; j < c; ++j) m = std::max(m, double(x[i * c + j]));
    double s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(double(x[i * c + j]) - m);
    r.loss += std::log(s) - (double(x[i * c + labels[i]]) - m);
    for (int64_t j = 0; j < c; ++j) {
      r.grad[i * c + j] = (std::exp(double(x[i * c + j]) - m) / s - (j == labels[i])) / n;
    }
  }
  if (n > 0) r.loss /= n;
  return r;
}

class KernelsSoftmaxXent : public KernelTestP<std::tuple<int64_t, int64_t, float>> {};

TEST_P(KernelsSoftmaxXent, LossAndGradientMatchReference) {
  const auto [n, c, scale] = GetParam();
  const auto x = RandomFloats(n * c, 10 + n, -scale, scale);
  std::vector<int32_t> labels(n);
  std::mt19937 rng(static_cast<uint32_t>(n * 31 + c));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % c);
  const XentRef ref = RefSoftmaxXent(x, labels, n, c);
  DeviceTensor dx = F32({n, c}, x), dl = DeviceTensor::From(DType::kI32, {n}, labels);
  DeviceTensor grad = PoisonedF32({n, c});
  auto loss = SoftmaxCrossEntropy(dx.view(), dl.view(), grad.view());
  ASSERT_OK(loss.status());
  const std::string what = "n" + std::to_string(n) + " c" + std::to_string(c);
  ExpectClose(*loss, ref.loss, kF32Rel, 1e-6, what + " loss");
  const double inv_n = n > 0 ? 1.0 / n : 1.0;
  ExpectAllClose(grad.Download<float>(), ref.grad, kF32Rel, 1e-6 * inv_n, what + " dlogits");
  // Loss only; and in place (dlogits aliases logits).
  auto loss_only = SoftmaxCrossEntropy(dx.view(), dl.view(), TensorView{});
  ASSERT_OK(loss_only.status());
  EXPECT_EQ(*loss_only, *loss);
  ASSERT_OK(SoftmaxCrossEntropy(dx.view(), dl.view(), dx.view()).status());
  ExpectAllClose(dx.Download<float>(), ref.grad, kF32Rel, 1e-6 * inv_n, what + " in place");
}

INSTANTIATE_TEST_SUITE_P(Shapes, KernelsSoftmaxXent,
                         ::testing::Combine(::testing::Values(0, 1, 7, 257, 2000),
                                            ::testing::Values(1, 2, 33, 1000),
                                            ::testing::Values(1.0f, 50.0f)));

TEST_F(KernelsNn, SoftmaxXentIsStableForHugeLogits) {
  const std::vector<float> x = {1e4f, 0.0f, -1e4f, 3e4f, 3e4f, -3e4f};
  const std::vector<int32_t> labels = {0, 2};
  const XentRef ref = RefSoftmaxXent(x, labels, 2, 3);
  DeviceTensor dx = F32({2, 3}, x), dl = DeviceTensor::From(DType::kI32, {2}, labels);
  DeviceTensor grad = PoisonedF32({2, 3});
  auto loss = SoftmaxCrossEntropy(dx.view(), dl.view(), grad.view());
  ASSERT_OK(loss.status());
  EXPECT_TRUE(std::isfinite(*loss));
  ExpectClose(*loss, ref.loss, kF32Rel, 1e-6, "loss");
  ExpectAllClose(grad.Download<float>(), ref.grad, kF32Rel, 1e-7, "dlogits");
}

TEST_F(KernelsNn, SoftmaxXentRejectsOutOfRangeLabels) {
  DeviceTensor dx = F32({2, 3}, RandomFloats(6, 1));
  for (int32_t bad : {3, -1}) {
    DeviceTensor dl = DeviceTensor::From(DType::kI32, {2}, std::vector<int32_t>{0, bad});
    auto loss = SoftmaxCrossEntropy(dx.view(), dl.view(), TensorView{});
    EXPECT_TRUE(IsInvalidArgument(loss.status())) << bad;
  }
  DeviceTensor short_labels = DeviceTensor::From(DType::kI32, {1}, std::vector<int32_t>{0});
  EXPECT_TRUE(IsInvalidArgument(SoftmaxCrossEntropy(dx.view(), short_labels.view(), TensorView{}).status()));
  DeviceTensor i64_labels = DeviceTensor::From(DType::kI64, {2}, std::vector<int64_t>{0, 1});
  EXPECT_TRUE(IsInvalidArgument(SoftmaxCrossEntropy(dx.view(), i64_labels.view(), TensorView{}).status()));
}

TEST_F(KernelsNn, ArgMaxAndCountCorrectPickTheFirstMaximum) {
  for (auto [n, c] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {1, 1}, {7, 33}, {257, 1000}}) {
    auto x = RandomFloats(n * c, 5 + n);
    if (n > 0 && c > 2) {  // a tie in row 0: first maximum wins
      x[1] = 5.0f;
      x[2] = 5.0f;
    }
    std::vector<int32_t> want(n), labels(n);
    int64_t want_correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; ++j) {
        if (x[i * c + j] > x[i * c + best]) best = j;
      }
      want[i] = static_cast<int32_t>(best);
      labels[i] = i % 2 == 0 ? want[i] : static_cast<int32_t>((best + 1) % c);
      want_correct += labels[i] == want[i];
    }
    DeviceTensor dx = F32({n, c}, x), out(DType::kI32, {n});
    out.Poison();
    ASSERT_OK(ArgMax(dx.view(), out.view()));
    EXPECT_EQ(out.Download<int32_t>(), want) << n << "x" << c;
    DeviceTensor dl = DeviceTensor::From(DType::kI32, {n}, labels);
    auto correct = CountCorrect(dx.view(), dl.view());
    ASSERT_OK(correct.status());
    EXPECT_EQ(*correct, want_correct) << n << "x" << c;
  }
}

class KernelsSigmoidBce : public KernelTestP<int64_t> {};

TEST_P(KernelsSigmoidBce, LossAndGradientMatchReference) {
  const int64_t n = GetParam();
  auto x = RandomFloats(n, 7, -20, 20);
  if (n >= 4) {  // extremes that overflow a naive formula
    x[0] = 100.0f;
    x[1] = -100.0f;
    x[2] = 0.0f;
    x[3] = -1e-3f;
  }
  std::vector<float> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = (i * 7 % 3 == 0) ? 1.0f : 0.0f;
  double want_loss = 0;
  std::vector<double> want_grad(n);
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[i], yi = y[i];
    want_loss += std::max(xi, 0.0) - xi * yi + std::log1p(std::exp(-std::fabs(xi)));
    want_grad[i] = (1.0 / (1.0 + std::exp(-xi)) - yi) / n;
  }
  if (n > 0) want_loss /= n;
  DeviceTensor dx = F32({n}, x), dy = F32({n}, y), grad = PoisonedF32({n});
  auto loss = SigmoidBinaryCrossEntropy(dx.view(), dy.view(), grad.view());
  ASSERT_OK(loss.status());
  ExpectClose(*loss, want_loss, kF32Rel, 1e-6, "bce loss n=" + std::to_string(n));
  ExpectAllClose(grad.Download<float>(), want_grad, kF32Rel, n > 0 ? 1e-7 / n : 0,
                 "bce grad n=" + std::to_string(n));
  ASSERT_OK(SigmoidBinaryCrossEntropy(dx.view(), dy.view(), dx.view()).status());  // in place
  ExpectAllClose(dx.Download<float>(), want_grad, kF32Rel, n > 0 ? 1e-7 / n : 0, "in place");
}

INSTANTIATE_TEST_SUITE_P(Sizes, KernelsSigmoidBce, ::testing::ValuesIn(OddSizes()));

TEST_F(KernelsNn, SigmoidBceRejectsMismatchedLabels) {
  DeviceTensor x(DType::kF32, {4}), y(DType::kF32, {5}), yi(DType::kI32, {4});
  EXPECT_TRUE(IsInvalidArgument(SigmoidBinaryCrossEntropy(x.view(), y.view(), TensorView{}).status()));
  EXPECT_TRUE(IsInvalidArgument(SigmoidBinaryCrossEntropy(x.view(), yi.view(), TensorView{}).status()));
}

}  // namespace
}  // namespace tessera::kernels::testing
