// SplitWork (a helper thread taking ranges of a batch) and the store's use of it: every
// range runs exactly once, the call returns only after the helper's ranges are done, the
// helper takes part, and a store reading and updating through it gives the bits of one
// without it. Threads: real ones (the helper), so this file is on the ASan and TSan lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "paramserver/shard_store.h"
#include "paramserver/split_work.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

TEST(SplitWork, EveryRangeRunsOnceAndIsDoneWhenTheCallReturns) {
  SplitWork split;
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<int> runs;
  for (const size_t n : {size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{1000}, size_t{4096}}) {
    for (int call = 0; call < 50; ++call) {
      runs.assign(n, 0);
      auto body = [&](size_t begin, size_t end) {
        ASSERT_LT(begin, end);  // at most 64 items, or all n while the caller backs off
        ASSERT_TRUE(end - begin <= 64 || (begin == 0 && end == n)) << begin << " " << end;
        // The helper's ranges take longer, so that it still holds one when the caller has
        // run out: the call must wait for it.
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::microseconds(std::this_thread::get_id() == caller ? 5 : 100);
        while (std::chrono::steady_clock::now() < until) {
        }
        for (size_t i = begin; i < end; ++i) ++runs[i];
      };
      split.For(n, 64, body);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(runs[i], 1) << "n " << n << " call " << call << " item " << i;
    }
  }
  EXPECT_GT(split.helper_ranges(), 0u);  // the helper took part
}

OptimizerConfig ClippedAdam() {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.01f;
  o.clip_norm = 0.5;
  return o;
}

// Pulls and pushes of 4096 keys (resident, absent, created by the push), with and
// without the helper: the same pulled bits, the same digest, the same rows.
TEST(ShardStoreSplit, PullsAndPushesAreBitwiseThoseWithoutTheHelper) {
  constexpr int64_t kWidth = 16;
  Cluster plain(1, 1, {SparseSpec("emb", kWidth, ClippedAdam())}, {SyncMode::kAsp, 0});
  Cluster split(1, 1, {SparseSpec("emb", kWidth, ClippedAdam())}, {SyncMode::kAsp, 0});
  ShardStore& a = plain.core(0).mutable_store();
  ShardStore& b = split.core(0).mutable_store();
  b.SetSplitWork(true);
  ASSERT_TRUE(b.split_work());
  std::mt19937_64 rng(5);
  std::vector<Key> keys;
  std::vector<float> out_a, out_b, g;
  for (int64_t step = 1; step <= 40; ++step) {
    // Distinct keys (a push requires them) from a range that fills up over the steps.
    const size_t n = step % 5 == 0 ? 700 : 4096;  // below kSplitMinKeys too
    keys.clear();
    for (Key k = rng() % 64; keys.size() < n; k += 1 + rng() % 16) keys.push_back(k);
    std::shuffle(keys.begin(), keys.end(), rng);
    out_a.assign(n * kWidth, 0.0f);
    out_b.assign(n * kWidth, 1.0f);
    ASSERT_OK(a.ReadSparse(0, keys, out_a));
    ASSERT_OK(b.ReadSparse(0, keys, out_b));
    ASSERT_EQ(std::memcmp(out_a.data(), out_b.data(), out_a.size() * sizeof(float)), 0) << "step " << step;
    g.resize(n * kWidth);
    for (size_t i = 0; i < g.size(); ++i) g[i] = 3.0f * Grad(0, step, i);  // some rows clip
    std::vector<float> g_b = g;
    ASSERT_OK(a.ApplySparseRows(0, keys, g, step));
    ASSERT_OK(b.ApplySparseRows(0, keys, g_b, step));
    ASSERT_EQ(a.Digest(), b.Digest()) << "step " << step;
  }
  EXPECT_GT(a.table_stats(0).created, 4096u);  // pushes created rows
  EXPECT_GT(b.split_helper_ranges(), 0u);
  const ShardSnapshot sa = a.Snapshot(), sb = b.Snapshot();
  ASSERT_EQ(sa.rows.size(), sb.rows.size());
  for (size_t i = 0; i < sa.rows.size(); ++i) {
    ASSERT_EQ(sa.rows[i].key, sb.rows[i].key);
    ASSERT_EQ(sa.rows[i].updates, sb.rows[i].updates);
    ASSERT_EQ(sa.rows[i].values, sb.rows[i].values) << "key " << sa.rows[i].key;
    ASSERT_EQ(sa.rows[i].slots, sb.rows[i].slots) << "key " << sa.rows[i].key;
  }
}

}  // namespace
}  // namespace tessera::paramserver::testing
