#include "worker/model/mlp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/hash.h"
#include "tests/testutil/testutil.h"
#include "tests/worker_model/grad_check.h"
#include "kernels/param_init.h"

namespace tessera::model {
namespace {

using testing::Copy;
using testing::ExpectGradientMatches;

TEST(ParseHiddenSizes, ParsesCommaSeparatedWidths) {
  EXPECT_EQ(*ParseHiddenSizes("256,128"), (std::vector<int64_t>{256, 128}));
  EXPECT_EQ(*ParseHiddenSizes(" 64 , 32 ,16"), (std::vector<int64_t>{64, 32, 16}));
  EXPECT_EQ(*ParseHiddenSizes("10"), (std::vector<int64_t>{10}));
  EXPECT_TRUE(ParseHiddenSizes("")->empty());
  EXPECT_TRUE(ParseHiddenSizes("  ")->empty());
}

TEST(ParseHiddenSizes, RejectsMalformedText) {
  for (const char* bad : {"256,", ",256", "256,,128", "a", "12x", "-5", "+5", "0", "3.5",
                          "99999999999999999999", "256;128"}) {
    auto r = ParseHiddenSizes(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().ToString();
  }
}

TEST(ParseActivation, KnowsReluGeluAndNone) {
  EXPECT_EQ(*ParseActivation("relu"), Activation::kRelu);
  EXPECT_EQ(*ParseActivation("gelu"), Activation::kGelu);
  EXPECT_EQ(*ParseActivation("none"), Activation::kIdentity);
  EXPECT_EQ(ParseActivation("tanh").status().code(), StatusCode::kInvalidArgument);
}

TEST(Mlp, DeclaresParametersInLayerOrder) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  auto mlp = Mlp::Create({.input_dim = 784,
                          .hidden_sizes = {256, 128},
                          .num_classes = 10,
                          .seed = 17,
                          .optimizer = adam});
  ASSERT_OK(mlp.status());
  const std::vector<ParamSpec> specs = (*mlp)->Params();
  const char* names[] = {"fc1.weight", "fc1.bias",   "fc2.weight",
                         "fc2.bias",   "fc3.weight", "fc3.bias"};
  const Shape shapes[] = {{784, 256}, {256}, {256, 128}, {128}, {128, 10}, {10}};
  ASSERT_EQ(specs.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(specs[i].name, names[i]) << "param " << i;
    EXPECT_EQ(specs[i].shape, shapes[i]) << "param " << i;
    EXPECT_EQ(specs[i].seed, 17u) << "param " << i;
    EXPECT_EQ(specs[i].optimizer.kind, OptimizerKind::kAdam) << "param " << i;
  }
  EXPECT_FLOAT_EQ(specs[0].init_scale, std::sqrt(6.0f / 784.0f));            // He
  EXPECT_FLOAT_EQ(specs[4].init_scale, std::sqrt(6.0f / (128.0f + 10.0f)));  // Glorot
  Parameter* p = (*mlp)->FindParam("fc2.bias");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, (*mlp)->parameters()[3]);
  EXPECT_EQ((*mlp)->FindParam("fc9.bias"), nullptr);
}

TEST(Mlp, LocalInitialisationUsesTheServersRule) {
  auto mlp = Mlp::Create({.input_dim = 6, .hidden_sizes = {5}, .num_classes = 3, .seed = 2});
  ASSERT_OK(mlp.status());
  ASSERT_OK((*mlp)->InitializeParameters());
  for (Parameter* p : (*mlp)->parameters()) {
    Tensor expected = Tensor::Zeros(DType::kF32, p->spec.shape);
    ASSERT_OK(InitializeParam(p->spec, expected.view(), 0));
    for (int64_t i = 0; i < expected.numel(); ++i) {
      ASSERT_EQ(p->value.as<float>()[i], expected.as<float>()[i]) << p->spec.name << " " << i;
    }
  }
}

TEST(Mlp, CreateRejectsBadSizes) {
  EXPECT_EQ(Mlp::Create({.input_dim = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Mlp::Create({.hidden_sizes = {4, 0}}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Mlp::Create({.num_classes = 0}).status().code(), StatusCode::kInvalidArgument);
}

// ---- Gradients of the full model --------------------------------------------------------

constexpr int64_t kBatch = 4, kDim = 6, kClasses = 3;

class MlpGradTest : public ::testing::TestWithParam<Activation> {
 protected:
  void SetUp() override {
    auto mlp = Mlp::Create({.input_dim = kDim,
                            .hidden_sizes = {5, 4},
                            .num_classes = kClasses,
                            .activation = GetParam(),
                            .seed = 22});
    ASSERT_OK(mlp.status());
    mlp_ = std::move(*mlp);
    ASSERT_OK(mlp_->InitializeParameters());
    // Non-zero biases so their gradients and the kinks are exercised.
    for (int l = 0; l < mlp_->num_layers(); ++l) {
      Parameter& b = mlp_->layer(l).bias();
      for (int64_t i = 0; i < b.value.numel(); ++i) {
        b.value.as<float>()[i] = 0.4f * (2.0f * UnitFloat(HashCombine(100 + l, i)) - 1.0f);
      }
    }
    x_ = Tensor::Zeros(DType::kF32, {kBatch, kDim});
    for (int64_t i = 0; i < x_.numel(); ++i) {
      x_.as<float>()[i] = 2.0f * UnitFloat(HashCombine(7, i)) - 1.0f;
    }
    labels_ = Tensor::Zeros(DType::kI32, {kBatch});
    for (int64_t i = 0; i < kBatch; ++i)
      labels_.as<int32_t>()[i] = static_cast<int32_t>(i % kClasses);
  }

  double Loss() {
    auto r = mlp_->Forward(x_.view(), labels_.view());
    EXPECT_OK(r.status());
    return r->loss;
  }

  // Smallest |pre-activation| over the hidden layers, recomputed in double.
  double MinHiddenPreActivation() {
    std::vector<double> h(x_.as<float>(), x_.as<float>() + x_.numel());
    int64_t in = kDim;
    double m = 1e9;
    for (int l = 0; l + 1 < mlp_->num_layers(); ++l) {
      Linear& layer = mlp_->layer(l);
      const int64_t out = layer.out_features();
      std::vector<double> next(kBatch * out);
      for (int64_t r = 0; r < kBatch; ++r) {
        for (int64_t c = 0; c < out; ++c) {
          double pre = layer.bias().value.as<float>()[c];
          for (int64_t k = 0; k < in; ++k)
            pre += h[r * in + k] * layer.weight().value.as<float>()[k * out + c];
          m = std::min(m, std::abs(pre));
          next[r * out + c] = std::max(pre, 0.0);
        }
      }
      h = std::move(next);
      in = out;
    }
    return m;
  }

  std::unique_ptr<Mlp> mlp_;
  Tensor x_;
  Tensor labels_;
};

TEST_P(MlpGradTest, BackwardMatchesCentralDifferencesForEveryParameterAndTheInput) {
  const testing::GradCheckOptions opts{.eps = 1e-3, .atol = 5e-4, .rtol = 1e-2};
  if (GetParam() == Activation::kRelu) {
    // One perturbation of eps moves a pre-activation by at most ~6 eps here (fan-in 5,
    // |W| <= 1.1): keep every kink farther away than that.
    ASSERT_GT(MinHiddenPreActivation(), 10 * opts.eps);
  }
  const double base = Loss();
  EXPECT_GT(base, 0.1);
  Tensor dx = Tensor::Zeros(DType::kF32, {kBatch, kDim});
  ASSERT_OK(mlp_->Backward(dx.view()));
  std::vector<std::vector<float>> analytic;
  for (Parameter* p : mlp_->parameters())
    analytic.push_back(Copy(p->grad.as<float>(), p->grad.numel()));
  const std::vector<float> dx_analytic = Copy(dx.as<float>(), dx.numel());

  auto loss = [this] { return Loss(); };
  const std::vector<Parameter*> params = mlp_->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    ExpectGradientMatches(params[i]->spec.name, params[i]->value.as<float>(), analytic[i], loss,
                          opts);
  }
  ExpectGradientMatches("input", x_.as<float>(), dx_analytic, loss, opts);
}

INSTANTIATE_TEST_SUITE_P(Activations, MlpGradTest,
                         ::testing::Values(Activation::kRelu, Activation::kGelu),
                         [](const auto& info) {
                           return std::string(info.param == Activation::kRelu ? "Relu" : "Gelu");
                         });

TEST(Mlp, ForwardReportsLossAndCorrectCount) {
  // Softmax regression with zero weights: uniform softmax, loss ln(C); argmax ties pick
  // class 0, so exactly the rows labelled 0 are "correct".
  auto mlp = Mlp::Create({.input_dim = 2, .num_classes = 4});
  ASSERT_OK(mlp.status());
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  std::vector<int32_t> y = {0, 3, 0};
  auto r = (*mlp)->Forward({x.data(), DType::kF32, {3, 2}, Device::kCPU},
                           {y.data(), DType::kI32, {3}, Device::kCPU});
  ASSERT_OK(r.status());
  EXPECT_NEAR(r->loss, std::log(4.0), 1e-6);
  EXPECT_EQ(r->correct, 2);
  EXPECT_EQ(r->count, 3);
}

TEST(Mlp, RejectsBadLabelsAndBackwardWithoutForward) {
  auto mlp = Mlp::Create({.input_dim = 2, .num_classes = 3});
  ASSERT_OK(mlp.status());
  EXPECT_EQ((*mlp)->Backward().code(), StatusCode::kFailedPrecondition);
  std::vector<float> x = {1, 2};
  std::vector<int32_t> y = {3};
  const TensorView xv{x.data(), DType::kF32, {1, 2}, Device::kCPU};
  EXPECT_EQ((*mlp)->Forward(xv, {y.data(), DType::kI32, {1}, Device::kCPU}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*mlp)->Backward().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*mlp)->Forward(xv, {y.data(), DType::kI64, {1}, Device::kCPU}).status().code(),
            StatusCode::kInvalidArgument);
  y[0] = 1;
  ASSERT_OK((*mlp)->Forward(xv, {y.data(), DType::kI32, {1}, Device::kCPU}).status());
  std::vector<float> dx(3);
  EXPECT_EQ((*mlp)->Backward({dx.data(), DType::kF32, {1, 3}, Device::kCPU}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_OK((*mlp)->Backward());
  ASSERT_OK((*mlp)->Predict(xv).status());
  EXPECT_EQ((*mlp)->Backward().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tessera::model
