#include "paramserver/server_core.h"

#include <gtest/gtest.h>

#include "tests/paramserver/test_cluster.h"
#include "kernels/param_init.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint32_t kW = 0, kB = 1, kEmb = 2;

std::vector<ParamSpec> Params(OptimizerConfig opt = {}) {
  return {DenseSpec("w", {5, 7}, opt), DenseSpec("b", {3}, opt), SparseSpec("emb", 4, opt)};
}

std::vector<float> Fill(size_t n, int worker, int64_t step) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = Grad(worker, step, i);
  return g;
}

// ---- Store contents ---------------------------------------------------------------------

TEST(ShardStore, DenseChunksHoldTheSharedInitialiserValues) {
  Cluster c(3, 1, Params());
  ParamSpec spec = *c.map().param(kW);
  std::vector<float> whole(35);
  ASSERT_OK(InitializeParam(spec, TensorView{whole.data(), DType::kF32, {35}, Device::kCPU}, 0));
  const std::vector<float> pulled = c.PullDense(kW);
  for (size_t i = 0; i < whole.size(); ++i) {
    ASSERT_EQ(pulled[i], whole[i]) << "element " << i;
  }
  EXPECT_NE(whole[0], whole[1]) << "uniform init, not constant";
}

TEST(ShardStore, AbsentSparseRowsReadAsTheirInitialValuesWithoutBeingStored) {
  Cluster c(2, 1, Params());
  const ParamSpec& spec = *c.map().param(kEmb);
  const std::vector<Key> keys = {42, 7, 42};
  const std::vector<float> pulled = c.PullSparse(kEmb, keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    std::vector<float> row(4);
    ASSERT_OK(
        InitializeSparseRow(spec, keys[i], TensorView{row.data(), DType::kF32, {4}, Device::kCPU}));
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(pulled[i * 4 + j], row[j]) << "key " << keys[i] << " col " << j;
  }
  EXPECT_EQ(c.core(0).store().num_rows(kEmb) + c.core(1).store().num_rows(kEmb), 0u);
}

TEST(ShardStore, SnapshotIsADeepOrderedCopyAndDigestFollowsValues) {
  Cluster c(1, 1, Params(), {SyncMode::kAsp, 0});
  ParamServerCore& core = c.core(0);
  const uint64_t d0 = core.Digest();
  ASSERT_OK(c.PushSparse(0, kEmb, 0, {9, 2, 5}, Fill(12, 0, 0)));
  ASSERT_OK(c.PushDense(0, kB, 0, Fill(3, 0, 0)));
  const ShardSnapshot snap = core.Snapshot();
  EXPECT_NE(core.Digest(), d0);
  ASSERT_EQ(snap.rows.size(), 3u);
  EXPECT_EQ(snap.rows[0].key, 2u);
  EXPECT_EQ(snap.rows[2].key, 9u);
  EXPECT_EQ(snap.rows[0].updates, 1);
  EXPECT_EQ(snap.shard_map_version, c.map().version());
  ASSERT_EQ(snap.chunks.size(), 5u + 1u);  // w: 35 f32 in chunks of 8; b: one chunk
  EXPECT_EQ(snap.chunks.back().param_id, kB);
  EXPECT_EQ(snap.chunks.back().updates, 1);
  EXPECT_EQ(snap.chunks.front().updates, 0);
  // Changing the store does not change the copy.
  ASSERT_OK(c.PushDense(0, kB, 1, Fill(3, 0, 1)));
  EXPECT_NE(core.Snapshot(), snap);
  EXPECT_EQ(snap.chunks.back().updates, 1);
}

// ---- bsp gating and determinism --------------------------------------------------------

TEST(Bsp, PullForNextStepWaitsUntilAllWorkersPushed) {
  Cluster c(1, 3, Params());
  ParamRequest pull = c.Request(0, kB, 1);
  pull.begin = 0;
  pull.end = 3;
  ASSERT_OK(c.PushDense(0, kB, 0, Fill(3, 0, 0)));
  ASSERT_OK(c.PushDense(2, kB, 0, Fill(3, 2, 0)));
  auto ready = c.core(0).PullReady(pull);
  ASSERT_OK(ready.status());
  EXPECT_FALSE(*ready);
  std::vector<float> out(3);
  EXPECT_EQ(c.core(0).Pull(pull, out).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.core(0).aggregator().PendingSteps(), 1u);
  ASSERT_OK(c.PushDense(1, kB, 0, Fill(3, 1, 0)));
  ready = c.core(0).PullReady(pull);
  ASSERT_OK(ready.status());
  EXPECT_TRUE(*ready);
  int64_t applied = -7;
  ASSERT_OK(c.core(0).Pull(pull, out, &applied));
  EXPECT_EQ(applied, 0);
  EXPECT_EQ(c.core(0).aggregator().PendingSteps(), 0u);
}

TEST(Bsp, ResultIsBitwiseIndependentOfArrivalOrder) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  Cluster a(2, 3, Params(adam));
  Cluster b(2, 3, Params(adam));
  const std::vector<std::vector<Key>> keys = {{1, 5, 9}, {5, 12, 9}, {9, 5, 100}};
  auto push_all = [&](Cluster& c, const std::vector<int>& order, int64_t step) {
    for (int w : order) {
      ASSERT_OK(c.PushDense(w, kW, step, Fill(35, w, step)));
      ASSERT_OK(c.PushSparse(w, kEmb, step, keys[w], Fill(12, w, step)));
    }
  };
  push_all(a, {0, 1, 2}, 0);
  push_all(b, {2, 0, 1}, 0);
  push_all(a, {1, 2, 0}, 1);
  push_all(b, {2, 1, 0}, 1);
  for (uint32_t s = 0; s < 2; ++s) {
    EXPECT_EQ(a.core(s).Snapshot(), b.core(s).Snapshot()) << "server " << s;
    EXPECT_EQ(a.core(s).Digest(), b.core(s).Digest()) << "server " << s;
  }
}

TEST(Bsp, PushesAheadAreBufferedAndAppliedInStepOrder) {
  Cluster c(1, 2, Params());
  // Worker 0 pushes steps 0 and 1 before worker 1 pushes anything.
  ASSERT_OK(c.PushDense(0, kB, 0, Fill(3, 0, 0)));
  ASSERT_OK(c.PushDense(0, kB, 1, Fill(3, 0, 1)));
  EXPECT_EQ(c.core(0).aggregator().PendingSteps(), 2u);
  ASSERT_OK(c.PushDense(1, kB, 0, Fill(3, 1, 0)));
  EXPECT_EQ(c.core(0).store().chunk(kB, 0)->updates, 1);
  ASSERT_OK(c.PushDense(1, kB, 1, Fill(3, 1, 1)));
  EXPECT_EQ(c.core(0).store().chunk(kB, 0)->updates, 2);
  EXPECT_EQ(c.core(0).aggregator().PendingSteps(), 0u);
}

// ---- asp / ssp ----------------------------------------------------------------------------

TEST(Asp, AppliesEachPushOnArrivalScaledByOneOverW) {
  OptimizerConfig sgd;
  sgd.lr = 0.5f;
  Cluster c(1, 3, Params(sgd), {SyncMode::kAsp, 0});
  const std::vector<float> p0 = c.PullDense(kB);
  const std::vector<float> g = {0.3f, -1.2f, 2.0f};
  std::vector<double> expected(p0.begin(), p0.end());
  for (int w = 0; w < 3; ++w) {
    ASSERT_OK(c.PushDense(w, kB, 0, g));
    for (size_t i = 0; i < 3; ++i) expected[i] -= 0.5 * (static_cast<double>(g[i]) / 3.0);
    ExpectClose(c.PullDense(kB, 5), expected, "after push of worker " + std::to_string(w));
  }
  // Three pushes of g under mean equal one SGD step of g.
  std::vector<double> one_step(p0.begin(), p0.end());
  for (size_t i = 0; i < 3; ++i) one_step[i] -= 0.5 * g[i];
  ExpectClose(c.PullDense(kB), one_step, "three pushes");
  EXPECT_EQ(c.core(0).aggregator().PendingSteps(), 0u);
}

// One worker under asp (no rescale, no clipping) applies the gradient where it arrived
// instead of copying it first: the result must be bitwise the copying path's (the same
// push with a clip norm too large to bite), and the received gradient must stay as sent.
TEST(Asp, UnscaledUnclippedPushAppliesInPlaceWithTheSameResult) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 0.01f;
  OptimizerConfig clipped = adam;
  clipped.clip_norm = 1e30f;
  Cluster in_place(1, 1, Params(adam), {SyncMode::kAsp, 0});
  Cluster copying(1, 1, Params(clipped), {SyncMode::kAsp, 0});
  for (int64_t step = 0; step < 3; ++step) {
    const std::vector<float> g = Fill(35, 0, step);
    std::vector<float> sent = g;
    ASSERT_OK(in_place.PushDense(0, kW, step, sent));
    ASSERT_OK(copying.PushDense(0, kW, step, g));
    ASSERT_EQ(sent, g) << "the in-place path wrote the received gradient";
  }
  const std::vector<float> a = in_place.PullDense(kW), b = copying.PullDense(kW);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
  EXPECT_NE(a, Cluster(1, 1, Params(adam), {SyncMode::kAsp, 0}).PullDense(kW)) << "nothing was applied";
}

// Rows `order` of a sparse push (keys and their gradient rows of width 4).
std::pair<std::vector<Key>, std::vector<float>> Permuted(const std::vector<Key>& keys,
                                                         const std::vector<float>& grads,
                                                         const std::vector<size_t>& order) {
  std::pair<std::vector<Key>, std::vector<float>> out;
  for (size_t i : order) {
    out.first.push_back(keys[i]);
    out.second.insert(out.second.end(), grads.begin() + static_cast<ptrdiff_t>(i * 4),
                      grads.begin() + static_cast<ptrdiff_t>((i + 1) * 4));
  }
  return out;
}

TEST(Asp, SparseFirstTouchIsIndependentOfArrivalOrder) {
  OptimizerConfig adagrad;
  adagrad.kind = OptimizerKind::kAdaGrad;
  Cluster a(2, 2, Params(adagrad), {SyncMode::kAsp, 0});
  Cluster b(2, 2, Params(adagrad), {SyncMode::kAsp, 0});
  const std::vector<Key> k0 = {3, 8, 1000}, k1 = {11, 20};
  const std::vector<float> g0 = Fill(12, 0, 0), g1 = Fill(8, 1, 0);
  // a: worker 0 then worker 1, rows in the order given.
  ASSERT_OK(a.PushSparse(0, kEmb, 0, k0, g0));
  ASSERT_OK(a.PushSparse(1, kEmb, 0, k1, g1));
  // b: worker 1 first, and every push's rows in another order: rows are created in a
  // different order, with the same initial values.
  auto [bk1, bg1] = Permuted(k1, g1, {1, 0});
  auto [bk0, bg0] = Permuted(k0, g0, {2, 0, 1});
  ASSERT_OK(b.PushSparse(1, kEmb, 0, bk1, bg1));
  ASSERT_OK(b.PushSparse(0, kEmb, 0, bk0, bg0));
  for (uint32_t s = 0; s < 2; ++s) {
    EXPECT_EQ(a.core(s).Snapshot(), b.core(s).Snapshot()) << "server " << s;
    EXPECT_EQ(a.core(s).Digest(), b.core(s).Digest()) << "server " << s;
  }
  EXPECT_EQ(a.core(0).store().num_rows(kEmb) + a.core(1).store().num_rows(kEmb), 5u);
}

TEST(Ssp, PullWaitsWhileThePullerIsMoreThanKAhead) {
  Cluster c(1, 2, Params(), {SyncMode::kSsp, 1});
  ParamRequest pull = c.Request(0, kB, 2);
  pull.begin = 0;
  pull.end = 3;
  ASSERT_OK(c.PushDense(0, kB, 0, Fill(3, 0, 0)));
  ASSERT_OK(c.PushDense(0, kB, 1, Fill(3, 0, 1)));
  EXPECT_EQ(c.core(0).store().chunk(kB, 0)->updates, 2) << "applied on arrival";
  auto ready = c.core(0).PullReady(pull);  // worker 0 at step 2, worker 1 still at step 0
  ASSERT_OK(ready.status());
  EXPECT_FALSE(*ready);
  pull.step = 1;
  ready = c.core(0).PullReady(pull);
  ASSERT_OK(ready.status());
  EXPECT_TRUE(*ready) << "one step ahead is within K=1";
  ASSERT_OK(c.PushDense(1, kB, 0, Fill(3, 1, 0)));
  pull.step = 2;
  ready = c.core(0).PullReady(pull);
  ASSERT_OK(ready.status());
  EXPECT_TRUE(*ready);
}

}  // namespace
}  // namespace tessera::paramserver::testing
