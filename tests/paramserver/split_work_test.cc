// SplitWork (a helper thread taking ranges of a batch) and the store's use of it: every
// range runs exactly once, the call returns only after the helper's ranges are done, the
// helper takes part, and a store reading and updating through it gives the bits of one
// without it. Threads: real ones (the helper), so this file is on the ASan and TSan lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
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

// A push of a pull's keys, all resident, takes ShardStore::PushResident (its rows opened
// and updated range by range, on two threads with the helper): the digest, the dirty rows
// and every row are those of the lookup path (pull slots not reused), with rows settled
// into the digest between pushes (so the helper takes hashes out of it) and dirty
// tracking on; and a row restored with a counter of -1 sends its table's pushes down the
// general path, which refuses a step < 1 before changing any row.
TEST(ShardStoreSplit, ResidentPushesAreBitwiseTheLookupPaths) {
  constexpr int64_t kWidth = 16;
  constexpr Key kTableKeys = 6000;
  const auto spec = SparseSpec("emb", kWidth, ClippedAdam());
  Cluster reference(1, 1, {spec}, {SyncMode::kAsp, 0}), one(1, 1, {spec}, {SyncMode::kAsp, 0}),
      two(1, 1, {spec}, {SyncMode::kAsp, 0});
  ShardStore& r = reference.core(0).mutable_store();
  ShardStore& a = one.core(0).mutable_store();
  ShardStore& b = two.core(0).mutable_store();
  r.SetReusePullSlots(false);
  b.SetSplitWork(true);
  std::mt19937_64 rng(11);
  std::vector<Key> keys(kTableKeys);
  for (Key k = 0; k < kTableKeys; ++k) keys[k] = k;
  std::vector<float> out, g;
  for (ShardStore* s : {&r, &a, &b}) {  // every row resident
    g.assign(keys.size() * kWidth, 0.25f);
    ASSERT_OK(s->ApplySparseRows(0, keys, g, 0));
    s->TrackDirtyRows(true);
  }
  // Until the helper has run ranges of PushResident (it may be slow to wake on a busy
  // machine, and then backs off), then 5 steps with the restored counter.
  uint64_t helper_push_ranges = 0;
  int64_t restored = 0;
  for (int64_t step = 1; restored == 0 || step < restored + 5; ++step) {
    if (restored == 0 && ((step >= 16 && helper_push_ranges > 0) || step == 2000)) {
      restored = step;  // a counter of -1: the next push's step would be 0
      for (ShardStore* s : {&r, &a, &b}) {
        std::optional<RowState> row = s->row(0, 7);
        ASSERT_TRUE(row.has_value());
        row->updates = -1;
        ASSERT_OK(s->RestoreRow(*row));
      }
    }
    std::shuffle(keys.begin(), keys.end(), rng);
    const size_t n = step % 3 == 0 ? 900 : 4096;  // below kSplitMinKeys too
    const std::span<const Key> batch(keys.data(), n);
    g.resize(n * kWidth);
    for (size_t i = 0; i < g.size(); ++i) g[i] = 3.0f * Grad(0, step, i);  // some rows clip
    const bool has7 = std::find(batch.begin(), batch.end(), Key{7}) != batch.end();
    for (ShardStore* s : {&r, &a, &b}) {
      out.assign(n * kWidth, 0.0f);
      ASSERT_OK(s->ReadSparse(0, batch, out));
      std::vector<float> gs = g;
      const uint64_t before = s->split_helper_ranges();
      const Status st = s->ApplySparseRows(0, batch, gs, step);
      if (restored == 0) helper_push_ranges += s->split_helper_ranges() - before;
      EXPECT_EQ(st.ok(), restored == 0 || !has7) << "step " << step;
    }
    ASSERT_EQ(r.Digest(), a.Digest()) << "step " << step;
    ASSERT_EQ(r.Digest(), b.Digest()) << "step " << step;
    if (step % 4 == 0) {
      const auto dirty = r.TakeDirtyRows();
      ASSERT_EQ(dirty, a.TakeDirtyRows()) << "step " << step;
      ASSERT_EQ(dirty, b.TakeDirtyRows()) << "step " << step;
    }
  }
  EXPECT_GT(a.pushes_reusing_pull_slots(), 0u);
  EXPECT_GT(b.pushes_reusing_pull_slots(), 0u);
  EXPECT_EQ(r.pushes_reusing_pull_slots(), 0u);
  EXPECT_GT(helper_push_ranges, 0u);
  const ShardSnapshot sr = r.Snapshot(), sa = a.Snapshot(), sb = b.Snapshot();
  ASSERT_EQ(sr.rows.size(), sa.rows.size());
  ASSERT_EQ(sr.rows.size(), sb.rows.size());
  for (size_t i = 0; i < sr.rows.size(); ++i) {
    ASSERT_EQ(sr.rows[i], sa.rows[i]) << "key " << sr.rows[i].key;
    ASSERT_EQ(sr.rows[i], sb.rows[i]) << "key " << sr.rows[i].key;
  }
}

}  // namespace
}  // namespace tessera::paramserver::testing
