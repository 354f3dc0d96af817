// The memory budget and admission (a partitioned sketch) are reshard-exact
// (ShardStore::SetTablePolicy, docs/consistency.md "Resharding"): the same pushes, routed
// by the shard map to 1, 2, 3 or 9 stores with the same job-wide budget, leave the same
// resident rows, the same summed digest and the same summed sketch;
// and a 2-server run restored onto 3 servers half-way continues exactly as the
// uninterrupted 2-server run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "paramserver/shard_store.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint64_t kWidth = 4;

OptimizerConfig Adam() {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.05f;
  return o;
}

// `servers` stores of one sparse table "emb" (param 0), every one under `policy`.
struct Job {
  Job(int servers, const TablePolicy& policy) : cluster(servers, 1, {SparseSpec("emb", kWidth, Adam())}, {SyncMode::kAsp, 0}) {
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) EXPECT_OK(store(s).SetTablePolicy(0, policy));
  }
  ShardStore& store(uint32_t s) { return cluster.core(s).mutable_store(); }
  // One step: every key's gradient depends on (key, step) only, routed by the map.
  void Push(const std::vector<Key>& keys, int64_t step) {
    auto split = cluster.map().SplitSparse(0, keys);
    ASSERT_OK(split.status());
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) {
      std::vector<float> g;
      for (const Key k : split->keys[s]) {
        for (uint64_t j = 0; j < kWidth; ++j) g.push_back(Grad(0, step, k * kWidth + j));
      }
      ASSERT_OK(store(s).ApplySparseRows(0, split->keys[s], g, step));
    }
  }
  std::set<Key> Resident() {
    std::set<Key> out;
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) {
      const RowTable& t = *store(s).table(0);
      for (uint32_t i = 0; i < t.slot_limit(); ++i) {
        if (t.live(i)) out.insert(t.key(i));
      }
    }
    return out;
  }
  uint64_t Digest() {
    uint64_t d = 0;
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) d += store(s).SparseDigest();
    return d;
  }
  uint64_t Evicted() {
    uint64_t n = 0;
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) n += store(s).table_stats(0).evicted;
    return n;
  }
  uint64_t Dropped() {
    uint64_t n = 0;
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) n += store(s).table_stats(0).dropped;
    return n;
  }
  // The servers' sketches summed (disjoint columns: every server's own counts).
  std::vector<float> SketchSum() {
    std::vector<float> sum, one;
    for (uint32_t s = 0; s < cluster.num_servers(); ++s) {
      store(s).sketch(0)->CountsInto(&one);
      sum.resize(one.size(), 0.0f);
      for (size_t i = 0; i < one.size(); ++i) sum[i] += one[i];
    }
    return sum;
  }
  // Every partition within its share, and its count the rows it really holds.
  void CheckPartitions() {
    std::vector<uint64_t> rows(kSparsePartitions, 0);
    for (const Key k : Resident()) ++rows[ShardMap::SparsePartitionOf(0, k)];
    for (uint32_t part = 0; part < kSparsePartitions; ++part) {
      ShardStore& st = store(part % cluster.num_servers());
      ASSERT_EQ(st.partition_rows(0, part), rows[part]) << "partition " << part;
      ASSERT_LE(rows[part], st.partition_cap(0, part)) << "partition " << part;
    }
  }
  Cluster cluster;
};

// Skewed distinct keys of one step (about `n` of them, ids below 6000).
std::vector<Key> StepKeys(std::mt19937_64& rng, size_t n) {
  std::set<Key> ks;
  while (ks.size() < n) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    ks.insert(static_cast<Key>(std::pow(u, 2.5) * 6000));
  }
  std::vector<Key> keys(ks.begin(), ks.end());
  std::shuffle(keys.begin(), keys.end(), rng);
  return keys;
}

uint64_t RowBytes() { return Job(1, TablePolicy{}).store(0).table(0)->RowBytes(); }

// The budget, expiry, and admission with a partitioned sketch (width >= 840: 1 column
// run of 2 per partition and row at 2048).
TablePolicy Policy(uint64_t limit, uint32_t servers) {
  TablePolicy p;
  p.memory_limit = limit;
  p.memory_servers = servers;
  p.expiry_steps = 16;
  p.min_key_count = 2;
  p.sketch_width = 2048;
  return p;
}

TEST(TableEvictionReshard, TheSamePushesOnOneTwoThreeOrNineServersEvictTheSameRows) {
  // B = 2 x 1300 rows (about 3.1 per partition) against about 3000 distinct keys.
  const uint64_t limit = RowBytes() * 1300;
  Job one(1, Policy(2 * limit, 1)), two(2, Policy(limit, 2)), three(3, Policy(limit, 2)), nine(9, Policy(limit, 2));
  std::mt19937_64 rng(5);
  for (int64_t step = 0; step < 60; ++step) {
    const std::vector<Key> keys = StepKeys(rng, 250);
    for (Job* j : {&one, &two, &three, &nine}) j->Push(keys, step);
    const std::set<Key> want = two.Resident();
    ASSERT_EQ(one.Resident(), want) << "step " << step;
    ASSERT_EQ(three.Resident(), want) << "step " << step;
    ASSERT_EQ(nine.Resident(), want) << "step " << step;
    ASSERT_EQ(one.Digest(), two.Digest()) << "step " << step;
    ASSERT_EQ(three.Digest(), two.Digest()) << "step " << step;
    ASSERT_EQ(nine.Digest(), two.Digest()) << "step " << step;
    ASSERT_EQ(nine.SketchSum(), two.SketchSum()) << "step " << step;
    ASSERT_EQ(one.SketchSum(), two.SketchSum()) << "step " << step;
    ASSERT_LE(want.size() * RowBytes(), 2 * limit);
    two.CheckPartitions();
    nine.CheckPartitions();
  }
  EXPECT_GT(two.Evicted(), 1000u);
  EXPECT_EQ(three.Evicted(), two.Evicted());
  EXPECT_GT(two.Dropped(), 0u) << "admission dropped some pushes";
  EXPECT_EQ(nine.Dropped(), two.Dropped());
  EXPECT_EQ(one.store(0).sketch(0)->partition_width(), 2u);
}

// Restores the rows of `from` into `to` by their owner under `to`'s map, and the sum of
// its sketches into every server of `to` (what RestoreShards does with a checkpoint).
void Reshard(Job& from, Job& to) {
  for (uint32_t s = 0; s < from.cluster.num_servers(); ++s) {
    for (const RowState& r : from.store(s).Snapshot().rows) {
      ASSERT_OK(to.store(ShardMap::SparseServerOf(0, r.key, to.cluster.num_servers())).RestoreRow(r));
    }
    std::vector<float> counts;
    from.store(s).sketch(0)->CountsInto(&counts);
    for (uint32_t t = 0; t < to.cluster.num_servers(); ++t) ASSERT_OK(to.store(t).RestoreSketch(0, counts, s > 0));
  }
}

TEST(TableEvictionReshard, ATwoServerRunRestoredOnThreeContinuesExactly) {
  const uint64_t limit = RowBytes() * 1300;
  Job two(2, Policy(limit, 2)), resumed_two(2, Policy(limit, 2)), three(3, Policy(limit, 2));
  std::mt19937_64 rng(9);
  std::vector<std::vector<Key>> steps;
  for (int64_t step = 0; step < 60; ++step) steps.push_back(StepKeys(rng, 250));
  for (int64_t step = 0; step < 30; ++step) two.Push(steps[static_cast<size_t>(step)], step);
  const uint64_t evicted_before = two.Evicted();
  ASSERT_GT(evicted_before, 0u);
  Reshard(two, three);
  Reshard(two, resumed_two);
  ASSERT_EQ(three.Digest(), two.Digest());
  three.CheckPartitions();
  for (int64_t step = 30; step < 60; ++step) {
    two.Push(steps[static_cast<size_t>(step)], step);
    three.Push(steps[static_cast<size_t>(step)], step);
    ASSERT_EQ(three.Resident(), two.Resident()) << "step " << step;
    ASSERT_EQ(three.Digest(), two.Digest()) << "step " << step;
  }
  EXPECT_GT(two.Evicted(), evicted_before) << "evictions after the reshard too";
  EXPECT_GT(three.Dropped(), 0u) << "admission after the reshard";
  EXPECT_GT(three.Evicted(), 0u);
  // The same budget set for 3 servers (a deliberate change: --table_memory_limit given
  // anew) is 1.5 times larger: fewer evictions, another resident set.
  Job bigger(3, Policy(limit, 3));
  Reshard(resumed_two, bigger);
  for (int64_t step = 30; step < 60; ++step) bigger.Push(steps[static_cast<size_t>(step)], step);
  EXPECT_GT(bigger.Resident().size(), two.Resident().size());
}

// A budget lowered on a resume: the first push trims every partition over its new share.
TEST(TableEvictionReshard, ALowerBudgetAfterARestoreTrimsEveryPartitionAtTheNextPush) {
  const uint64_t limit = RowBytes() * 1300;
  Job two(2, Policy(limit, 2)), small(3, Policy(limit / 2, 2));
  std::mt19937_64 rng(3);
  for (int64_t step = 0; step < 20; ++step) two.Push(StepKeys(rng, 250), step);
  Reshard(two, small);
  EXPECT_EQ(small.Resident(), two.Resident()) << "a restore keeps every row";
  small.Push({Key{1}}, 20);
  small.CheckPartitions();
  EXPECT_LE(small.Resident().size() * RowBytes(), limit);
  EXPECT_GT(small.Evicted(), 0u);
}

}  // namespace
}  // namespace tessera::paramserver::testing
