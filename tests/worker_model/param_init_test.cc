#include "kernels/param_init.h"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

ParamSpec Spec(std::string name, Shape shape, InitKind init, float scale, uint64_t seed) {
  ParamSpec s;
  s.name = std::move(name);
  s.shape = std::move(shape);
  s.init = init;
  s.init_scale = scale;
  s.seed = seed;
  return s;
}

TensorView View(std::vector<float>& v) {
  return {v.data(), DType::kF32, {static_cast<int64_t>(v.size())}, Device::kCPU};
}

std::vector<float> Whole(const ParamSpec& spec) {
  std::vector<float> v(static_cast<size_t>(spec.numel()));
  EXPECT_OK(InitializeParam(spec, View(v), 0));
  return v;
}

TEST(ParamInit, UniformValuesAreFrozen) {
  // Golden values from an independent Python transcription of the rule in param_init.h.
  const ParamSpec spec = Spec("fc1.weight", {2, 2}, InitKind::kUniform, 0.5f, 7);
  const std::vector<float> v = Whole(spec);
  const float expected[] = {0.11433053016662598f, 0.03130131959915161f, 0.10732078552246094f,
                            0.10130423307418823f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(v[i], expected[i]) << "index " << i;
}

TEST(ParamInit, NormalValuesMatchBoxMuller) {
  const ParamSpec spec = Spec("emb", {3}, InitKind::kNormal, 2.0f, 3);
  const std::vector<float> v = Whole(spec);
  const double expected[] = {2.8663735389709473, -4.181664943695068, -2.3156940937042236};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(v[i], expected[i], 1e-5) << "index " << i;
}

TEST(ParamInit, ChunkedInitialisationEqualsWhole) {
  for (InitKind kind : {InitKind::kUniform, InitKind::kNormal}) {
    const ParamSpec spec = Spec("layer.weight", {37, 11}, kind, 0.3f, 99);
    const std::vector<float> whole = Whole(spec);
    for (int64_t chunk : {1, 5, 64, 407}) {
      std::vector<float> pieced(whole.size());
      for (int64_t off = 0; off < spec.numel(); off += chunk) {
        const int64_t n = std::min(chunk, spec.numel() - off);
        TensorView part{pieced.data() + off, DType::kF32, {n}, Device::kCPU};
        ASSERT_OK(InitializeParam(spec, part, static_cast<uint64_t>(off)));
      }
      ASSERT_EQ(0, std::memcmp(whole.data(), pieced.data(), whole.size() * sizeof(float)))
          << "kind " << static_cast<int>(kind) << " chunk " << chunk;
    }
  }
}

TEST(ParamInit, SeedAndNameChangeTheValues) {
  const std::vector<float> a = Whole(Spec("w", {64}, InitKind::kUniform, 1.0f, 1));
  const std::vector<float> b = Whole(Spec("w", {64}, InitKind::kUniform, 1.0f, 2));
  const std::vector<float> c = Whole(Spec("v", {64}, InitKind::kUniform, 1.0f, 1));
  int same_ab = 0, same_ac = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    same_ab += a[i] == b[i];
    same_ac += a[i] == c[i];
  }
  EXPECT_LT(same_ab, 2);
  EXPECT_LT(same_ac, 2);
  EXPECT_EQ(a, Whole(Spec("w", {64}, InitKind::kUniform, 1.0f, 1)));
}

TEST(ParamInit, UniformAndNormalHaveTheirMoments) {
  const std::vector<float> u = Whole(Spec("u", {100000}, InitKind::kUniform, 0.2f, 5));
  const std::vector<float> n = Whole(Spec("n", {100000}, InitKind::kNormal, 0.2f, 5));
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    ASSERT_GE(u[i], -0.2f) << "index " << i;
    ASSERT_LT(u[i], 0.2f) << "index " << i;
    su += u[i];
    su2 += double(u[i]) * u[i];
    sn += n[i];
    sn2 += double(n[i]) * n[i];
  }
  const double N = static_cast<double>(u.size());
  EXPECT_NEAR(su / N, 0.0, 0.002);
  EXPECT_NEAR(su2 / N, 0.04 / 3.0, 0.0003);  // var of U(-a, a) = a^2 / 3
  EXPECT_NEAR(sn / N, 0.0, 0.003);
  EXPECT_NEAR(sn2 / N, 0.04, 0.001);
}

TEST(ParamInit, ZerosAndConstant) {
  for (float v : Whole(Spec("z", {5}, InitKind::kZeros, 3.0f, 1))) EXPECT_EQ(v, 0.0f);
  for (float v : Whole(Spec("c", {5}, InitKind::kConstant, 0.1f, 1))) EXPECT_EQ(v, 0.1f);
}

TEST(ParamInit, RangePastTheEndIsInvalidArgument) {
  const ParamSpec spec = Spec("w", {10}, InitKind::kUniform, 1.0f, 1);
  std::vector<float> v(4);
  EXPECT_OK(InitializeParam(spec, View(v), 6));
  EXPECT_EQ(InitializeParam(spec, View(v), 7).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(InitializeParam(spec, View(v), ~uint64_t{0}).code(), StatusCode::kInvalidArgument);
}

TEST(ParamInit, WrongDtypeIsInvalidArgument) {
  ParamSpec spec = Spec("w", {4}, InitKind::kUniform, 1.0f, 1);
  std::vector<double> d(4);
  EXPECT_EQ(InitializeParam(spec, {d.data(), DType::kF64, {4}, Device::kCPU}, 0).code(),
            StatusCode::kInvalidArgument);
  spec.dtype = DType::kBF16;
  std::vector<float> v(4);
  EXPECT_EQ(InitializeParam(spec, View(v), 0).code(), StatusCode::kInvalidArgument);
}

TEST(ParamInit, SparseRowsDependOnlyOnTableAndKey) {
  ParamSpec spec = Spec("emb", {8}, InitKind::kNormal, 0.01f, 4);
  spec.kind = ParamKind::kSparse;
  std::vector<float> a(8), b(8), c(8);
  ASSERT_OK(InitializeSparseRow(spec, 123456789, View(a)));
  ASSERT_OK(InitializeSparseRow(spec, 42, View(c)));
  ASSERT_OK(InitializeSparseRow(spec, 123456789, View(b)));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<float> wrong(7);
  EXPECT_EQ(InitializeSparseRow(spec, 1, View(wrong)).code(), StatusCode::kInvalidArgument);
}

// The servers' batched initialiser is InitializeSparseRow bit for bit: every kind, narrow
// rows, odd widths and a row wider than the columns it tables (4096).
TEST(ParamInit, SparseRowInitIsInitializeSparseRowBitForBit) {
  for (const InitKind kind : {InitKind::kUniform, InitKind::kNormal, InitKind::kZeros, InitKind::kConstant}) {
    for (const int64_t width : {int64_t{1}, int64_t{3}, int64_t{16}, int64_t{5000}}) {
      ParamSpec spec = Spec("table_" + std::to_string(width), {width}, kind, 0.05f, 77);
      spec.kind = ParamKind::kSparse;
      auto init = SparseRowInit::Create(spec);
      ASSERT_OK(init.status());
      ASSERT_EQ(init->width(), static_cast<uint64_t>(width));
      std::vector<float> want(static_cast<size_t>(width)), got(want.size());
      for (const uint64_t key : {uint64_t{0}, uint64_t{1}, uint64_t{123456789}, ~uint64_t{0}, uint64_t{1} << 63}) {
        ASSERT_OK(InitializeSparseRow(spec, key, View(want)));
        std::fill(got.begin(), got.end(), -7.0f);
        init->Fill(key, got.data());
        ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
            << "kind " << static_cast<int>(kind) << " width " << width << " key " << key;
      }
    }
  }
  ParamSpec bad = Spec("t", {4}, static_cast<InitKind>(99), 1.0f, 0);
  EXPECT_EQ(SparseRowInit::Create(bad).status().code(), StatusCode::kInvalidArgument);
  ParamSpec f16 = Spec("t", {4}, InitKind::kUniform, 1.0f, 0);
  f16.dtype = DType::kF16;
  EXPECT_EQ(SparseRowInit::Create(f16).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera
