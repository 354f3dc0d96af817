// RowStaging (worker/sparse/row_staging.h) without a network: the CSR of positions per
// row, and gather / scatter-add through the device path against naive loops, on the CPU
// "device" (worker_sparse_test) and on CUDA (worker_sparse_gpu_test, label gpu: skips itself
// where no GPU is usable).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/testutil/testutil.h"
#include "worker/sparse/row_staging.h"

namespace tessera::worker::sparse {
namespace {

#if !defined(TESSERA_ROW_STAGING_TEST_CUDA)  // host-only: worker_sparse_test runs these
TEST(GroupPositions, ListsEachRowsPositionsInAscendingOrder) {
  std::vector<int64_t> order, offsets;
  const std::vector<int64_t> ids{2, 0, 2, 1, 2};
  ASSERT_OK(GroupPositions(ids, 4, &order, &offsets));
  EXPECT_EQ(order, (std::vector<int64_t>{1, 3, 0, 2, 4}));
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 1, 2, 5, 5})) << "row 3 has no position";
  ASSERT_OK(GroupPositions({}, 2, &order, &offsets));
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(offsets, (std::vector<int64_t>{0, 0, 0}));
}

TEST(GroupPositions, RejectsAnIdOutsideTheRows) {
  std::vector<int64_t> order, offsets;
  const std::vector<int64_t> high{0, 3}, negative{-1};
  EXPECT_EQ(GroupPositions(high, 3, &order, &offsets).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GroupPositions(negative, 3, &order, &offsets).code(), StatusCode::kInvalidArgument);
}
#endif

class RowStagingOn : public ::testing::TestWithParam<Device> {
 protected:
  void SetUp() override {
    if (GetParam() == Device::kCUDA && !kernels::CudaDeviceAvailable()) GTEST_SKIP() << "no usable CUDA device";
  }
};

// A table of 37 rows of width 5 and 211 positions with many repeats: Gather returns the
// rows, ScatterAdd sums each row's positions in order from +0 (bitwise the naive loop).
TEST_P(RowStagingOn, GatherAndScatterAddMatchNaiveLoops) {
  constexpr int64_t kRows = 37, kWidth = 5, kPositions = 211;
  SparseBatch batch;
  batch.tables.resize(2);
  for (SparseRows& r : batch.tables) r.pinned_for = GetParam();
  batch.tables[1].keys.resize(kRows);
  ASSERT_OK(batch.tables[0].Resize(kWidth));  // an empty table next to a full one
  ASSERT_OK(batch.tables[1].Resize(kWidth));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1, 1);
  float* values = batch.tables[1].values.as<float>();
  for (int64_t i = 0; i < kRows * kWidth; ++i) values[i] = uni(rng);
  std::vector<int64_t> ids(kPositions);
  for (auto& id : ids) id = static_cast<int64_t>(rng() % 6 == 0 ? rng() % kRows : rng() % 4);
  std::vector<float> contrib(kPositions * kWidth);
  for (auto& c : contrib) c = uni(rng);

  auto staging = RowStaging::Create(GetParam());
  ASSERT_OK(staging.status());
  RowStaging& s = **staging;
  std::vector<float> gathered(kPositions * kWidth);
  EXPECT_EQ(s.Gather(batch, 1, ids, gathered.data()).code(), StatusCode::kFailedPrecondition) << "before LoadRows";
  ASSERT_OK(s.LoadRows(batch));
  ASSERT_OK(s.Gather(batch, 1, ids, gathered.data()));
  for (int64_t i = 0; i < kPositions; ++i) {
    ASSERT_EQ(0, std::memcmp(&gathered[i * kWidth], &values[ids[i] * kWidth], kWidth * sizeof(float))) << i;
  }
  ASSERT_OK(s.ScatterAdd(&batch, 1, ids, contrib.data()));
  std::vector<float> want(kRows * kWidth, 0.0f);
  for (int64_t i = 0; i < kPositions; ++i) {
    for (int64_t j = 0; j < kWidth; ++j) want[ids[i] * kWidth + j] += contrib[i * kWidth + j];
  }
  EXPECT_EQ(0, std::memcmp(want.data(), batch.tables[1].grads.data(), want.size() * sizeof(float)));
  ASSERT_OK(s.ScatterAdd(&batch, 0, {}, nullptr));  // an empty table

  std::vector<int64_t> bad{0, kRows};
  EXPECT_EQ(s.Gather(batch, 1, bad, gathered.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ScatterAdd(&batch, 1, bad, contrib.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.ScatterAdd(&batch, 2, ids, contrib.data()).code(), StatusCode::kInvalidArgument) << "no table 2";
}

// word2vec's step on the device against its host loop (worker/sparse/word2vec_workload.cc):
// 301 targets over 11 input and 23 output rows, with repeats; the grads must be the loop's
// bits on the CPU, and within rounding on CUDA (nvcc contracts the dot's multiply-adds).
TEST_P(RowStagingOn, PairDotStepMatchesTheHostLoop) {
  constexpr int64_t kIn = 11, kOut = 23, kD = 6, kTargets = 301;
  SparseBatch batch;
  batch.tables.resize(2);
  batch.tables[0].keys.resize(kIn);
  batch.tables[1].keys.resize(kOut);
  for (SparseRows& r : batch.tables) {
    r.pinned_for = GetParam();
    ASSERT_OK(r.Resize(kD));
  }
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
  for (SparseRows& r : batch.tables) {
    for (int64_t i = 0; i < r.values.numel(); ++i) r.values.as<float>()[i] = uni(rng);
  }
  std::vector<int64_t> in_ids(kTargets), out_ids(kTargets);
  std::vector<float> labels(kTargets);
  for (int64_t t = 0; t < kTargets; ++t) {
    in_ids[t] = static_cast<int64_t>(rng() % kIn);
    out_ids[t] = static_cast<int64_t>(rng() % kOut);
    labels[t] = t % 6 == 0 ? 1.0f : 0.0f;
  }
  // The host loop: gv += g * u, gu += g * v, g = sigmoid(dot(u, v)) - y (a stand-in for
  // the sigmoid: any function of s checks the plumbing).
  auto grad_of = [&](float s, int64_t t) { return 1.0f / (1.0f + std::exp(-s)) - labels[t]; };
  const float* in = batch.tables[0].values.as<float>();
  const float* out = batch.tables[1].values.as<float>();
  std::vector<float> want_in(kIn * kD, 0.0f), want_out(kOut * kD, 0.0f);
  for (int64_t t = 0; t < kTargets; ++t) {
    const float* v = in + in_ids[t] * kD;
    const float* u = out + out_ids[t] * kD;
    float s = 0;
    for (int64_t d = 0; d < kD; ++d) s += u[d] * v[d];
    const float g = grad_of(s, t);
    for (int64_t d = 0; d < kD; ++d) {
      want_in[in_ids[t] * kD + d] += g * u[d];
      want_out[out_ids[t] * kD + d] += g * v[d];
    }
  }
  auto staging = RowStaging::Create(GetParam());
  ASSERT_OK(staging.status());
  RowStaging& st = **staging;
  ASSERT_OK(st.LoadRows(batch));
  int64_t calls = 0;
  ASSERT_OK(st.PairDotStep(&batch, in_ids, out_ids, [&](std::span<const float> s, std::span<float> g) {
    ++calls;
    ASSERT_EQ(s.size(), static_cast<size_t>(kTargets));
    for (size_t t = 0; t < s.size(); ++t) g[t] = grad_of(s[t], static_cast<int64_t>(t));
  }));
  EXPECT_EQ(calls, 1);
  const float* got_in = batch.tables[0].grads.as<float>();
  const float* got_out = batch.tables[1].grads.as<float>();
  if (GetParam() == Device::kCPU) {
    EXPECT_EQ(0, std::memcmp(got_in, want_in.data(), want_in.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(got_out, want_out.data(), want_out.size() * sizeof(float)));
  } else {
    for (size_t i = 0; i < want_in.size(); ++i) EXPECT_NEAR(got_in[i], want_in[i], 1e-4) << i;
    for (size_t i = 0; i < want_out.size(); ++i) EXPECT_NEAR(got_out[i], want_out[i], 1e-4) << i;
  }
  const std::vector<int64_t> short_ids(kTargets - 1, 0);
  EXPECT_EQ(st.PairDotStep(&batch, in_ids, short_ids, [](auto, auto) {}).code(), StatusCode::kInvalidArgument);
  std::vector<int64_t> bad = out_ids;
  bad[5] = kOut;
  EXPECT_EQ(st.PairDotStep(&batch, in_ids, bad, [](auto, auto) {}).code(), StatusCode::kInvalidArgument);
}

TEST_P(RowStagingOn, AnUnsizedTableIsRejected) {
  SparseBatch batch;
  batch.tables.resize(1);
  auto staging = RowStaging::Create(GetParam());
  ASSERT_OK(staging.status());
  EXPECT_EQ((*staging)->LoadRows(batch).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*staging)->ScatterAdd(&batch, 0, {}, nullptr).code(), StatusCode::kInvalidArgument);
}

TEST_P(RowStagingOn, InteractionNeedsItsForwardAndMatchingIds) {
  SparseBatch batch;
  batch.tables.resize(2);
  for (SparseRows& r : batch.tables) {
    r.pinned_for = GetParam();
    r.keys.resize(3);
    ASSERT_OK(r.Resize(4));
  }
  auto staging = RowStaging::Create(GetParam());
  ASSERT_OK(staging.status());
  RowStaging& st = **staging;
  ASSERT_OK(st.LoadRows(batch));
  std::vector<float> dense(2 * 4, 0.5f), pairs(2 * 3), ddense(2 * 4);
  EXPECT_EQ(st.InteractBackward(&batch, pairs.data(), ddense.data()).code(), StatusCode::kFailedPrecondition);
  const std::vector<int64_t> a{0, 2}, b{1, 3};
  const std::vector<int64_t> short_ids{0};
  std::vector<std::span<const int64_t>> bad_row{a, b}, bad_len{a, short_ids}, one{a};
  EXPECT_EQ(st.InteractForward(batch, dense.data(), bad_row, pairs.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.InteractForward(batch, dense.data(), bad_len, pairs.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.InteractForward(batch, dense.data(), one, pairs.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.InteractBackward(&batch, pairs.data(), ddense.data()).code(), StatusCode::kFailedPrecondition)
      << "a failed forward leaves nothing to go back through";
  const std::vector<int64_t> ok{1, 1};
  std::vector<std::span<const int64_t>> good{a, ok};
  ASSERT_OK(st.InteractForward(batch, dense.data(), good, pairs.data()));
  ASSERT_OK(st.InteractBackward(&batch, pairs.data(), ddense.data()));
}

// worker_sparse_test (label unit) runs the CPU case; with CUDA, the same source builds into
// worker_sparse_gpu_test (label gpu), whose CUDA case skips itself where no GPU is usable.
#if defined(TESSERA_ROW_STAGING_TEST_CUDA)
INSTANTIATE_TEST_SUITE_P(Devices, RowStagingOn, ::testing::Values(Device::kCUDA),
                         [](const auto&) { return std::string("cuda"); });
#else
INSTANTIATE_TEST_SUITE_P(Devices, RowStagingOn, ::testing::Values(Device::kCPU),
                         [](const auto&) { return std::string("cpu"); });
#endif

}  // namespace
}  // namespace tessera::worker::sparse
