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

// GroupedRowSum against a reference that adds in the same order in float, from +0: the
// result must be bitwise that reference (it is what makes the sparse staging path's
// digest equal the host path's), on both backends. Groups from repeated ids: row u
// collects the positions i with ids[i] == u, ascending, as the sparse workloads build it.
using GroupedParam = std::tuple<int64_t, int64_t, int64_t>;  // U, D, N

class KernelsGroupedRowSum : public KernelTestP<GroupedParam> {};

TEST_P(KernelsGroupedRowSum, SumsEachGroupInOrderBitwise) {
  const auto [u, d, n] = GetParam();
  const auto rows = RandomFloats(n * d, 11);
  // Skewed ids (many repeats of small ones) and, when u > 1, one row that nobody uses.
  std::mt19937_64 rng(12);
  std::vector<int64_t> ids(n);
  for (auto& x : ids) {
    const int64_t r = static_cast<int64_t>(rng() % static_cast<uint64_t>(u * u)) ;
    x = static_cast<int64_t>(std::sqrt(static_cast<double>(r)));
    if (u > 1 && x == u - 1) x = 0;
  }
  std::vector<int64_t> offsets(u + 1, 0), order(n);
  for (int64_t i = 0; i < n; ++i) ++offsets[ids[i] + 1];
  for (int64_t j = 0; j < u; ++j) offsets[j + 1] += offsets[j];
  std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[fill[ids[i]]++] = i;
  std::vector<float> want(u * d, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) want[ids[i] * d + j] += rows[i * d + j];
  }
  DeviceTensor dr = F32({n, d}, rows), out = PoisonedF32({u, d});
  DeviceTensor dorder = DeviceTensor::From(DType::kI64, {n}, order);
  DeviceTensor doff = DeviceTensor::From(DType::kI64, {u + 1}, offsets);
  ASSERT_OK(GroupedRowSum(dr.view(), dorder.view(), doff.view(), out.view()));
  const auto got = out.Download<float>();
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
      << "GroupedRowSum must add in order from +0, bitwise";
  if (u > 1 && d > 0) {
    for (int64_t j = 0; j < d; ++j) {
      EXPECT_EQ(got[(u - 1) * d + j], 0.0f) << "the unused row is zeroed";
      EXPECT_FALSE(std::signbit(got[(u - 1) * d + j]));
    }
  }
  // Equal to ScatterAdd (CPU, input order) into a zeroed table.
  std::vector<float> scattered(u * d, 0.0f);
  ASSERT_OK(ScatterAdd(TensorView{ids.data(), DType::kI64, {n}, Device::kCPU},
                       TensorView{const_cast<float*>(rows.data()), DType::kF32, {n, d}, Device::kCPU},
                       TensorView{scattered.data(), DType::kF32, {u, d}, Device::kCPU}));
  EXPECT_EQ(0, std::memcmp(got.data(), scattered.data(), scattered.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelsGroupedRowSum,
    ::testing::Combine(::testing::Values(1, 2, 37, 1001), ::testing::Values(1, 7, 64),
                       ::testing::Values(0, 1, 263, 5003)),
    [](const auto& info) {
      return "u" + std::to_string(std::get<0>(info.param)) + "_d" + std::to_string(std::get<1>(info.param)) +
             "_n" + std::to_string(std::get<2>(info.param));
    });

class KernelsEmbeddingValidation : public KernelTest {};

TEST_F(KernelsEmbeddingValidation, GroupedRowSumRejectsBadGroupsAndWritesNothing) {
  DeviceTensor rows = F32({3, 2}, RandomFloats(6, 1));
  const auto poison = PoisonedF32({2, 2}).Download<float>();
  auto expect_bad = [&](const std::vector<int64_t>& order, const std::vector<int64_t>& offsets, const char* what) {
    DeviceTensor o = DeviceTensor::From(DType::kI64, {static_cast<int64_t>(order.size())}, order);
    DeviceTensor f = DeviceTensor::From(DType::kI64, {static_cast<int64_t>(offsets.size())}, offsets);
    DeviceTensor out = PoisonedF32({2, 2});
    EXPECT_TRUE(IsInvalidArgument(GroupedRowSum(rows.view(), o.view(), f.view(), out.view()))) << what;
    const auto after = out.Download<float>();
    EXPECT_EQ(0, std::memcmp(after.data(), poison.data(), after.size() * sizeof(float))) << what;
  };
  expect_bad({0, 3, 1}, {0, 1, 3}, "order entry past rows");
  expect_bad({0, -1, 1}, {0, 1, 3}, "negative order entry");
  expect_bad({0, 2, 1}, {0, 2, 1}, "offsets decrease");
  expect_bad({0, 2, 1}, {1, 2, 3}, "offsets do not start at 0");
  expect_bad({0, 2, 1}, {0, 1, 2}, "offsets do not end at order's length");
  expect_bad({0, 2, 1}, {0, 3}, "offsets of the wrong length");
  DeviceTensor o = DeviceTensor::From(DType::kI64, {1}, std::vector<int64_t>{0});
  DeviceTensor f = DeviceTensor::From(DType::kI64, {3}, std::vector<int64_t>{0, 0, 1});
  DeviceTensor wide(DType::kF32, {2, 3});
  EXPECT_TRUE(IsInvalidArgument(GroupedRowSum(rows.view(), o.view(), f.view(), wide.view()))) << "width";
  DeviceTensor o32(DType::kI32, {1});
  DeviceTensor out(DType::kF32, {2, 2});
  EXPECT_TRUE(IsInvalidArgument(GroupedRowSum(rows.view(), o32.view(), f.view(), out.view()))) << "i32 order";
}

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
