// ShardStore::ApplySparseRowsReadOnly (an asp push applied where it arrived, no copy):
// bitwise ApplySparseRows' result, the gradient untouched, also when admission drops
// rows (the kept rows' gradients gathered elsewhere) and when a row creation fails;
// refused for a table that clips.
#include <gtest/gtest.h>

#include "paramserver/shard_store.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint64_t kWidth = 3;

OptimizerConfig Adam(float clip = 0) {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.01f;
  o.clip_norm = clip;
  return o;
}

Cluster MakeCluster(float clip = 0) {
  return Cluster(1, 1, {SparseSpec("emb", kWidth, Adam(clip))}, {SyncMode::kAsp, 0});
}

TEST(ReadOnlySparsePush, BitwiseTheCopyingPushAndTheGradientUntouchedWithAdmissionDrops) {
  Cluster a = MakeCluster(), b = MakeCluster();
  ShardStore& ro = a.core(0).mutable_store();
  ShardStore& rw = b.core(0).mutable_store();
  TablePolicy policy;
  policy.min_key_count = 3;  // a key gets its row on its third push: the first two drop
  ASSERT_OK(ro.SetTablePolicy(0, policy));
  ASSERT_OK(rw.SetTablePolicy(0, policy));
  for (int64_t step = 1; step <= 12; ++step) {
    std::vector<Key> keys;
    for (Key k = static_cast<Key>(step % 4); k < 40; k += 1 + static_cast<Key>(step % 3)) keys.push_back(k);
    std::vector<float> g(keys.size() * kWidth);
    for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i);
    const std::vector<float> sent = g;
    ASSERT_OK(ro.ApplySparseRowsReadOnly(0, keys, sent, step));
    ASSERT_OK(rw.ApplySparseRows(0, keys, g, step));
    ASSERT_EQ(ro.Digest(), rw.Digest()) << "step " << step;
    ASSERT_EQ(sent, [&] {  // still what was sent (the copying push compacted its own)
      std::vector<float> again(keys.size() * kWidth);
      for (size_t i = 0; i < again.size(); ++i) again[i] = Grad(0, step, i);
      return again;
    }()) << "step " << step;
  }
  EXPECT_GT(ro.table_stats(0).dropped, 0u);
  EXPECT_EQ(ro.table_stats(0).dropped, rw.table_stats(0).dropped);
  EXPECT_EQ(ro.Snapshot(), rw.Snapshot());
}

TEST(ReadOnlySparsePush, RefusedForATableThatClips) {
  Cluster a = MakeCluster(/*clip=*/1.0f);
  ShardStore& s = a.core(0).mutable_store();
  const std::vector<Key> keys = {1, 2};
  const std::vector<float> g(2 * kWidth, 5.0f);
  const Status st = s.ApplySparseRowsReadOnly(0, keys, g, 1);
  EXPECT_EQ(st.code(), StatusCode::kInternal) << st.ToString();
  EXPECT_EQ(s.num_rows(0), 0u);
}

// Through the server core: a one-worker asp push (nothing rescales, nothing clips) is
// applied from the request's values, with the same rows as a clipping-free copy would give.
TEST(ReadOnlySparsePush, AnAspPushThroughTheCoreGivesTheStoresRows) {
  Cluster a = MakeCluster(), b = MakeCluster();
  const std::vector<Key> keys = {3, 9, 27};
  std::vector<float> g(keys.size() * kWidth);
  for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, 1, i);
  ParamRequest r = a.Request(0, 0, 0);
  r.kind = ParamKind::kSparse;
  r.keys = keys;
  const std::vector<float> sent = g;
  ASSERT_OK(a.core(0).Push(r, sent));
  ASSERT_OK(b.core(0).mutable_store().ApplySparseRows(0, keys, g, 0));
  EXPECT_EQ(a.core(0).store().Digest(), b.core(0).store().Digest());
}

}  // namespace
}  // namespace tessera::paramserver::testing
