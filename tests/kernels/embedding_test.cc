// Embedding gather / scatter-add / duplicate merge vs references.
// Bounds: gather is a copy (exact). ScatterAdd sums at most `dups` rows into each table
// row: |err| <= dups * 2^-24 * sum|terms| (checked as kF32Rel relative + that absolute).
// ScatterAddUnique is exact-order float addition: also bitwise deterministic across runs
// (and, in the GPU binary, bitwise equal to the CPU backend).
#include <map>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels::testing {
namespace {

using EmbParam = std::tuple<int64_t, int64_t, int64_t, DType>;  // V, D, N, index dtype

std::vector<uint64_t> RandomKeys(int64_t n, uint64_t limit, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> k(n);
  for (auto& x : k) x = rng() % limit;
  return k;
}

DeviceTensor IndexTensor(DType t, const std::vector<uint64_t>& keys) {
  const int64_t n = static_cast<int64_t>(keys.size());
  if (t == DType::kU64) return DeviceTensor::From(t, {n}, keys);
  std::vector<int64_t> s(keys.begin(), keys.end());
  return DeviceTensor::From(t, {n}, s);
}

class KernelsEmbedding : public KernelTestP<EmbParam> {};

TEST_P(KernelsEmbedding, GatherCopiesRows) {
  const auto [v, d, n, t] = GetParam();
  const auto table = RandomFloats(v * d, 1);
  const auto keys = RandomKeys(n, static_cast<uint64_t>(v), 2);
  DeviceTensor dt = F32({v, d}, table), idx = IndexTensor(t, keys), out = PoisonedF32({n, d});
  ASSERT_OK(EmbeddingGather(dt.view(), idx.view(), out.view()));
  std::vector<double> want(n * d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) want[i * d + j] = table[keys[i] * d + j];
  }
  ExpectAllClose(out.Download<float>(), want, 0, 0, "gather");
}

TEST_P(KernelsEmbedding, ScatterAddAccumulatesDuplicates) {
  const auto [v, d, n, t] = GetParam();
  const auto table = RandomFloats(v * d, 3);
  const auto grads = RandomFloats(n * d, 4);
  const auto keys = RandomKeys(n, static_cast<uint64_t>(v), 5);
  std::vector<double> want = ToDouble(table), mag(v * d, 0.0);
  std::vector<int64_t> dups(v, 0);
  for (int64_t i = 0; i < n; ++i) {
    ++dups[keys[i]];
    for (int64_t j = 0; j < d; ++j) {
      want[keys[i] * d + j] += grads[i * d + j];
      mag[keys[i] * d + j] += std::fabs(grads[i * d + j]);
    }
  }
  DeviceTensor dt = F32({v, d}, table), idx = IndexTensor(t, keys), dg = F32({n, d}, grads);
  ASSERT_OK(ScatterAdd(idx.view(), dg.view(), dt.view()));
  const auto got = dt.Download<float>();
  for (int64_t r = 0; r < v; ++r) {
    for (int64_t j = 0; j < d; ++j) {
      const int64_t e = r * d + j;
      const double bound = kF32Rel * std::fabs(want[e]) +
                           (dups[r] + 1) * kF32Eps * (mag[e] + std::fabs(table[e]));
      ASSERT_LE(std::fabs(got[e] - want[e]), bound) << "row " << r << " col " << j;
    }
  }
}

TEST_P(KernelsEmbedding, ScatterAddUniqueMergesDuplicateKeysDeterministically) {
  const auto [v, d, n, t] = GetParam();
  const auto grads = RandomFloats(n * d, 6);
  const auto keys = RandomKeys(n, static_cast<uint64_t>(v), 7);
  std::map<uint64_t, std::vector<double>> want;
  std::map<uint64_t, std::vector<double>> mag;
  for (int64_t i = 0; i < n; ++i) {
    auto& row = want[keys[i]];
    auto& m = mag[keys[i]];
    row.resize(d, 0.0);
    m.resize(d, 0.0);
    for (int64_t j = 0; j < d; ++j) {
      row[j] += grads[i * d + j];
      m[j] += std::fabs(grads[i * d + j]);
    }
  }
  DeviceTensor idx = IndexTensor(t, keys), dg = F32({n, d}, grads);
  std::vector<uint64_t> uniq;
  Tensor summed;
  ASSERT_OK(ScatterAddUnique(idx.view(), dg.view(), &uniq, &summed));
  ASSERT_EQ(uniq.size(), want.size());
  ASSERT_EQ(summed.shape(), (Shape{static_cast<int64_t>(want.size()), d}));
  EXPECT_EQ(summed.view().device, device());
  std::vector<float> got(summed.numel());
  ASSERT_OK(CopyTensor(summed.view(), TensorView{got.data(), DType::kF32, summed.shape(), Device::kCPU}));
  size_t u = 0;
  for (const auto& [key, row] : want) {
    ASSERT_EQ(uniq[u], key) << "unique key " << u;
    for (int64_t j = 0; j < d; ++j) {
      const double bound = kF32Rel * std::fabs(row[j]) + n * kF32Eps * mag[key][j];
      ASSERT_LE(std::fabs(got[u * d + j] - row[j]), bound) << "key " << key << " col " << j;
    }
    ++u;
  }
  // Same input, same bits.
  std::vector<uint64_t> uniq2;
  Tensor summed2;
  ASSERT_OK(ScatterAddUnique(idx.view(), dg.view(), &uniq2, &summed2));
  std::vector<float> got2(summed2.numel());
  ASSERT_OK(CopyTensor(summed2.view(), TensorView{got2.data(), DType::kF32, summed2.shape(), Device::kCPU}));
  EXPECT_EQ(uniq, uniq2);
  EXPECT_EQ(0, std::memcmp(got.data(), got2.data(), got.size() * sizeof(float)));
  if (device() == Device::kCUDA) {  // the CUDA result is bit-identical to the CPU one
    std::vector<uint64_t> cpu_uniq;
    Tensor cpu_summed;
    std::vector<int64_t> skeys(keys.begin(), keys.end());
    TensorView host_keys = t == DType::kU64
                               ? TensorView{const_cast<uint64_t*>(keys.data()), t, {n}, Device::kCPU}
                               : TensorView{skeys.data(), t, {n}, Device::kCPU};
    TensorView host_grads{const_cast<float*>(grads.data()), DType::kF32, {n, d}, Device::kCPU};
    ASSERT_OK(ScatterAddUnique(host_keys, host_grads, &cpu_uniq, &cpu_summed));
    EXPECT_EQ(cpu_uniq, uniq);
    EXPECT_EQ(0, std::memcmp(cpu_summed.data(), got.data(), got.size() * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelsEmbedding,
    ::testing::Combine(::testing::Values(1, 33, 1000), ::testing::Values(1, 7, 64),
                       ::testing::Values(0, 1, 257, 5000),
                       ::testing::Values(DType::kI64, DType::kU64)),
    [](const auto& info) {
      return "v" + std::to_string(std::get<0>(info.param)) + "_d" +
             std::to_string(std::get<1>(info.param)) + "_n" +
             std::to_string(std::get<2>(info.param)) + "_" +
             std::string(DTypeName(std::get<3>(info.param)));
    });

class KernelsEmbeddingValidation : public KernelTest {};

TEST_F(KernelsEmbeddingValidation, OutOfRangeIndexIsRejectedAndNothingIsWritten) {
  const auto table = RandomFloats(4 * 3, 1);
  DeviceTensor dt = F32({4, 3}, table), grads = F32({2, 3}, RandomFloats(6, 2));
  for (int64_t bad : {4, -1}) {
    DeviceTensor idx = DeviceTensor::From(DType::kI64, {2}, std::vector<int64_t>{1, bad});
    DeviceTensor out = PoisonedF32({2, 3});
    EXPECT_TRUE(IsInvalidArgument(EmbeddingGather(dt.view(), idx.view(), out.view()))) << bad;
    EXPECT_TRUE(IsInvalidArgument(ScatterAdd(idx.view(), grads.view(), dt.view()))) << bad;
    ExpectAllClose(dt.Download<float>(), ToDouble(table), 0, 0, "table unchanged");
  }
  DeviceTensor huge = DeviceTensor::From(DType::kU64, {1}, std::vector<uint64_t>{~uint64_t{0}});
  DeviceTensor out1 = PoisonedF32({1, 3});
  EXPECT_TRUE(IsInvalidArgument(EmbeddingGather(dt.view(), huge.view(), out1.view())));
  DeviceTensor neg = DeviceTensor::From(DType::kI64, {2}, std::vector<int64_t>{3, -5});
  std::vector<uint64_t> uniq;
  Tensor summed;
  EXPECT_TRUE(IsInvalidArgument(ScatterAddUnique(neg.view(), grads.view(), &uniq, &summed)));
}

TEST_F(KernelsEmbeddingValidation, RejectsShapeAndDtypeMismatch) {
  DeviceTensor dt(DType::kF32, {4, 3}), out(DType::kF32, {2, 4}), idx(DType::kI32, {2});
  DeviceTensor idx64 = DeviceTensor::From(DType::kI64, {2}, std::vector<int64_t>{0, 1});
  EXPECT_TRUE(IsInvalidArgument(EmbeddingGather(dt.view(), idx64.view(), out.view())));
  DeviceTensor out_ok(DType::kF32, {2, 3});
  EXPECT_TRUE(IsInvalidArgument(EmbeddingGather(dt.view(), idx.view(), out_ok.view())));
  std::vector<uint64_t> uniq;
  Tensor summed;
  DeviceTensor g3(DType::kF32, {3, 3});
  EXPECT_TRUE(IsInvalidArgument(ScatterAddUnique(idx64.view(), g3.view(), &uniq, &summed)));
  EXPECT_TRUE(IsInvalidArgument(ScatterAddUnique(idx64.view(), out_ok.view(), nullptr, &summed)));
}

}  // namespace
}  // namespace tessera::kernels::testing
