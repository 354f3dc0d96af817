// --compress parsing and the top-k compressor's selection and error feedback (pure; the
// compressed all-reduces run under mpirun in collective_mpi_test).
#include "collective/compression.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace tessera::collective {
namespace {

TEST(ParseCompression, AcceptsEveryFormAndRoundTrips) {
  for (const char* s : {"none", "fp16", "bf16", "topk:0.01", "topk:1", "topk:0.5"}) {
    auto c = ParseCompression(s);
    ASSERT_TRUE(c.ok()) << s << ": " << c.status().ToString();
    EXPECT_EQ(c->ToString(), s);
    EXPECT_EQ(ParseCompression(c->ToString())->kind, c->kind);
  }
  EXPECT_EQ(ParseCompression("fp16")->wire(), WireFormat::kF16);
  EXPECT_EQ(ParseCompression("bf16")->wire(), WireFormat::kBF16);
  EXPECT_EQ(ParseCompression("none")->wire(), WireFormat::kNative);
  EXPECT_DOUBLE_EQ(ParseCompression("topk:0.01")->topk_ratio, 0.01);
}

TEST(ParseCompression, RejectsBadTextNamingIt) {
  for (const char* s : {"", "fp32", "FP16", "topk", "topk:", "topk:0", "topk:1.5", "topk:-0.1", "topk:abc", "topk:0.1x"}) {
    auto c = ParseCompression(s);
    ASSERT_FALSE(c.ok()) << s;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("--compress=" + std::string(s) + ":"), std::string::npos) << c.status().ToString();
    EXPECT_NE(c.status().message().find("none, fp16, bf16 or topk:R"), std::string::npos);
  }
}

TEST(TopKCompressor, PicksTheLargestMagnitudesAndKeepsTheRest) {
  TopKCompressor c(8, 0.25);
  ASSERT_EQ(c.k(), 2u);
  std::vector<float> g = {0.1f, -5.0f, 0.3f, 2.0f, -0.2f, 1.0f, 0.0f, -1.5f};
  std::vector<uint32_t> idx;
  std::vector<float> val;
  c.Compress(g, &idx, &val);
  EXPECT_EQ(idx, (std::vector<uint32_t>{1, 3}));
  EXPECT_EQ(val, (std::vector<float>{-5.0f, 2.0f}));
  std::vector<float> res(c.residual().begin(), c.residual().end());
  EXPECT_EQ(res, (std::vector<float>{0.1f, 0.0f, 0.3f, 0.0f, -0.2f, 1.0f, 0.0f, -1.5f}));
  // Next step: zero gradient; the residual alone decides (-1.5 and 1.0).
  c.Compress(std::vector<float>(8, 0.0f), &idx, &val);
  EXPECT_EQ(idx, (std::vector<uint32_t>{5, 7}));
  EXPECT_EQ(val, (std::vector<float>{1.0f, -1.5f}));
}

TEST(TopKCompressor, ErrorFeedbackLosesNothing) {
  const size_t n = 1000;
  TopKCompressor c(n, 0.01);
  ASSERT_EQ(c.k(), 10u);
  std::vector<double> fed(n, 0), sent(n, 0);
  std::vector<uint32_t> idx;
  std::vector<float> val;
  for (int step = 0; step < 50; ++step) {
    std::vector<float> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = std::sin(static_cast<float>(i * 31 + step * 7));
    for (size_t i = 0; i < n; ++i) fed[i] += g[i];
    c.Compress(g, &idx, &val);
    ASSERT_EQ(idx.size(), 10u);
    for (size_t j = 0; j < idx.size(); ++j) sent[idx[j]] += val[j];
  }
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(sent[i] + c.residual()[i], fed[i], 1e-3) << i;
}

TEST(TopKCompressor, KIsAtLeastOneAndAtMostN) {
  EXPECT_EQ(TopKCompressor(10, 0.001).k(), 1u);
  EXPECT_EQ(TopKCompressor(10, 1.0).k(), 10u);
  EXPECT_EQ(TopKCompressor(0, 0.5).k(), 0u);
}

}  // namespace
}  // namespace tessera::collective
