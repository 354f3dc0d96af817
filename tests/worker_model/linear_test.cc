#include "worker/model/linear.h"

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

constexpr int64_t kBatch = 4, kIn = 5, kOut = 3;

// Uniform values in [-a, a) from a hash stream.
void FillUniform(float* p, int64_t n, uint64_t seed, float a) {
  for (int64_t i = 0; i < n; ++i) p[i] = a * (2.0f * UnitFloat(HashCombine(seed, i)) - 1.0f);
}

class LinearGradTest : public ::testing::TestWithParam<Activation> {
 protected:
  void SetUp() override {
    auto layer = Linear::Create("fc", kIn, kOut, GetParam(), {.seed = 3});
    ASSERT_OK(layer.status());
    layer_ = std::move(*layer);
    ASSERT_OK(InitializeParam(layer_->weight().spec, layer_->weight().value.view(), 0));
    FillUniform(layer_->bias().value.as<float>(), kOut, 11, 0.5f);  // non-zero bias
    x_ = Tensor::Zeros(DType::kF32, {kBatch, kIn});
    FillUniform(x_.as<float>(), x_.numel(), 12, 1.0f);
    g_.resize(kBatch * kOut);
    FillUniform(g_.data(), kBatch * kOut, 13, 1.0f);
  }

  // Objective L = sum(y * g), accumulated in double.
  double Loss() {
    auto y = layer_->Forward(x_.view());
    EXPECT_OK(y.status());
    double s = 0;
    for (int64_t i = 0; i < kBatch * kOut; ++i) s += double(y->as<float>()[i]) * g_[i];
    return s;
  }

  // Smallest |x @ W + b| over the batch, in double: ReLU's kink must be farther than any
  // perturbation can move a pre-activation.
  double MinPreActivationMagnitude() {
    double m = 1e9;
    const float* x = x_.as<float>();
    const float* w = layer_->weight().value.as<float>();
    const float* b = layer_->bias().value.as<float>();
    for (int64_t r = 0; r < kBatch; ++r) {
      for (int64_t c = 0; c < kOut; ++c) {
        double pre = b[c];
        for (int64_t k = 0; k < kIn; ++k) pre += double(x[r * kIn + k]) * w[k * kOut + c];
        m = std::min(m, std::abs(pre));
      }
    }
    return m;
  }

  std::unique_ptr<Linear> layer_;
  Tensor x_;
  std::vector<float> g_;
};

TEST_P(LinearGradTest, BackwardMatchesCentralDifferences) {
  const testing::GradCheckOptions opts{.eps = 1e-2};
  if (GetParam() == Activation::kRelu) {
    // One perturbation moves a pre-activation by at most eps * max(|x|, 1).
    ASSERT_GT(MinPreActivationMagnitude(), 3 * opts.eps);
  }
  Loss();
  TensorView gy{g_.data(), DType::kF32, {kBatch, kOut}, Device::kCPU};
  auto dx = layer_->Backward(gy, /*want_input_grad=*/true);
  ASSERT_OK(dx.status());
  ASSERT_EQ(dx->shape, (Shape{kBatch, kIn}));
  const auto dw = Copy(layer_->weight().grad.as<float>(), kIn * kOut);
  const auto db = Copy(layer_->bias().grad.as<float>(), kOut);
  const auto dxv = Copy(dx->as<float>(), kBatch * kIn);
  auto loss = [this] { return Loss(); };
  ExpectGradientMatches("weight", layer_->weight().value.as<float>(), dw, loss, opts);
  ExpectGradientMatches("bias", layer_->bias().value.as<float>(), db, loss, opts);
  ExpectGradientMatches("input", x_.as<float>(), dxv, loss, opts);
}

INSTANTIATE_TEST_SUITE_P(Activations, LinearGradTest,
                         ::testing::Values(Activation::kRelu, Activation::kGelu,
                                           Activation::kIdentity),
                         [](const auto& info) {
                           switch (info.param) {
                             case Activation::kRelu:
                               return std::string("Relu");
                             case Activation::kGelu:
                               return std::string("Gelu");
                             default:
                               return std::string("Identity");
                           }
                         });

TEST(Linear, DeclaresWeightAndBiasWithDefaultInit) {
  auto relu = Linear::Create("fc2", 100, 7, Activation::kRelu, {.seed = 5});
  ASSERT_OK(relu.status());
  const std::vector<Parameter*> params = (*relu)->parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->spec.name, "fc2.weight");
  EXPECT_EQ(params[0]->spec.shape, (Shape{100, 7}));
  EXPECT_EQ(params[0]->spec.init, InitKind::kUniform);
  EXPECT_FLOAT_EQ(params[0]->spec.init_scale, std::sqrt(6.0f / 100.0f));
  EXPECT_EQ(params[0]->spec.seed, 5u);
  EXPECT_EQ(params[1]->spec.name, "fc2.bias");
  EXPECT_EQ(params[1]->spec.shape, (Shape{7}));
  EXPECT_EQ(params[1]->spec.init, InitKind::kZeros);
  EXPECT_EQ(params[0]->value.shape(), (Shape{100, 7}));
  EXPECT_EQ(params[0]->grad.shape(), (Shape{100, 7}));
  auto out = Linear::Create("out", 100, 7, Activation::kIdentity);
  EXPECT_FLOAT_EQ((*out)->weight().spec.init_scale, std::sqrt(6.0f / 107.0f));
}

TEST(Linear, ForwardComputesAffineThenActivation) {
  auto layer = Linear::Create("fc", 2, 2, Activation::kRelu);
  ASSERT_OK(layer.status());
  float* w = (*layer)->weight().value.as<float>();
  w[0] = 1;
  w[1] = -1;
  w[2] = 2;
  w[3] = 0.5f;  // W = [[1, -1], [2, 0.5]]
  (*layer)->bias().value.as<float>()[1] = 0.25f;
  std::vector<float> x = {1, 2, -1, 0};
  auto y = (*layer)->Forward({x.data(), DType::kF32, {2, 2}, Device::kCPU});
  ASSERT_OK(y.status());
  // Row 0: [1 + 4, -1 + 1 + 0.25] = [5, 0.25]; row 1: [-1, 1 + 0.25] -> relu [0, 1.25].
  const float expected[] = {5, 0.25f, 0, 1.25f};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y->as<float>()[i], expected[i]) << "index " << i;
}

TEST(Linear, RejectsBadShapesAndOrder) {
  EXPECT_EQ(Linear::Create("fc", 0, 2, Activation::kRelu).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Linear::Create("", 1, 2, Activation::kRelu).status().code(),
            StatusCode::kInvalidArgument);
  auto layer = Linear::Create("fc", 3, 2, Activation::kRelu);
  std::vector<float> buf(12);
  EXPECT_EQ(
      (*layer)->Backward({buf.data(), DType::kF32, {2, 2}, Device::kCPU}, true).status().code(),
      StatusCode::kFailedPrecondition);
  EXPECT_EQ((*layer)->Forward({buf.data(), DType::kF32, {2, 4}, Device::kCPU}).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_OK((*layer)->Forward({buf.data(), DType::kF32, {2, 3}, Device::kCPU}).status());
  EXPECT_EQ(
      (*layer)->Backward({buf.data(), DType::kF32, {3, 2}, Device::kCPU}, true).status().code(),
      StatusCode::kInvalidArgument);
}

TEST(Linear, GrowsBuffersForLargerBatches) {
  auto layer = Linear::Create("fc", 2, 3, Activation::kIdentity);
  (*layer)->bias().value.as<float>()[2] = 1.0f;
  std::vector<float> x(2 * 50, 1.0f);
  for (int64_t rows : {1, 50, 7}) {
    auto y = (*layer)->Forward({x.data(), DType::kF32, {rows, 2}, Device::kCPU});
    ASSERT_OK(y.status());
    EXPECT_EQ(y->shape, (Shape{rows, 3}));
    EXPECT_EQ(y->as<float>()[rows * 3 - 1], 1.0f) << "rows " << rows;
  }
}

}  // namespace
}  // namespace tessera::model
