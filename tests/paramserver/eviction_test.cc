// Sparse tables larger than a server's share (ShardStore::SetTablePolicy): eviction under
// a memory budget per virtual partition in the documented order, expiry after N steps unseen, admission by a
// count-min sketch, a snapshot/restore round trip that keeps last-seen and the sketch
// (and so every later eviction), and a randomized run against a reference model.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "common/hash.h"
#include "kernels/param_init.h"
#include "paramserver/count_min_sketch.h"
#include "paramserver/shard_store.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint64_t kWidth = 4;

// A one-server store with one sparse table "emb" (param 0) under `policy`.
struct Store {
  explicit Store(const TablePolicy& policy) : cluster(1, 1, {SparseSpec("emb", kWidth, Adagrad())}, {SyncMode::kAsp, 0}) {
    EXPECT_OK(store().SetTablePolicy(0, policy));
  }
  ShardStore& store() { return cluster.core(0).mutable_store(); }
  const RowTable& table() { return *store().table(0); }
  Status Push(std::vector<Key> keys, int64_t step) {
    std::vector<float> g(keys.size() * kWidth);
    for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i + keys[i / kWidth]);
    return store().ApplySparseRows(0, keys, g, step);
  }
  std::set<Key> Resident() {
    std::set<Key> out;
    for (uint32_t s = 0; s < table().slot_limit(); ++s) {
      if (table().live(s)) out.insert(table().key(s));
    }
    return out;
  }
  Cluster cluster;
};

std::vector<Key> Range(Key from, Key to) {
  std::vector<Key> k;
  for (Key i = from; i < to; ++i) k.push_back(i);
  return k;
}

uint64_t RowBytes() { return Store(TablePolicy{}).table().RowBytes(); }

// The first `n` keys (from 0 up) of virtual partition `part` of table 0.
std::vector<Key> PartitionKeys(uint32_t part, size_t n) {
  std::vector<Key> k;
  for (Key key = 0; k.size() < n; ++key) {
    if (ShardMap::SparsePartitionOf(0, key) == part) k.push_back(key);
  }
  return k;
}

// The budget is per virtual partition: 100 rows each here (B = 840 * 100 rows), 90 kept.
TEST(TableEviction, MemoryLimitKeepsEachPartitionUnderItsShareAndEvictsItsOldestFirst) {
  TablePolicy p;
  p.memory_limit = RowBytes() * kSparsePartitions * 100;
  Store s(p);
  const std::vector<Key> k = PartitionKeys(5, 120);
  const auto sub = [&](size_t from, size_t to) { return std::vector<Key>(k.begin() + from, k.begin() + to); };
  ASSERT_OK(s.Push(sub(0, 50), 0));
  ASSERT_OK(s.Push(sub(50, 100), 1));
  ASSERT_OK(s.Push(sub(0, 10), 2));  // seen again: no longer among the oldest
  EXPECT_EQ(s.table().size(), 100u);
  EXPECT_EQ(s.store().partition_rows(0, 5), 100u);
  EXPECT_EQ(s.store().partition_cap(0, 5), 100u);
  EXPECT_EQ(s.store().table_stats(0).evicted, 0u) << "at the partition's share, not over it";
  // Other partitions fill up to their own shares without touching partition 5.
  ASSERT_OK(s.Push(PartitionKeys(6, 100), 3));
  EXPECT_EQ(s.store().table_stats(0).evicted, 0u);
  ASSERT_OK(s.Push(sub(100, 120), 4));
  // Partition 5 holds 120 rows > 100: down to its share of 90 % of B (90 rows), the 30
  // oldest of its keys 10..49 (last seen at step 0), ties by Mix64(key ^ table salt);
  // partition 6, as full but not over, keeps all of its rows.
  EXPECT_EQ(s.store().partition_rows(0, 5), 90u);
  EXPECT_EQ(s.store().partition_rows(0, 6), 100u);
  EXPECT_EQ(s.table().size(), 190u);
  EXPECT_EQ(s.store().table_stats(0).evicted, 30u);
  std::vector<Key> old = sub(10, 50);
  const uint64_t salt = ParamNameHash("emb");
  std::sort(old.begin(), old.end(), [&](Key a, Key b) { return Mix64(a ^ salt) < Mix64(b ^ salt); });
  std::set<Key> want;
  for (Key key : sub(0, 10)) want.insert(key);
  for (Key key : sub(50, 120)) want.insert(key);
  for (size_t i = 30; i < old.size(); ++i) want.insert(old[i]);
  for (Key key : PartitionKeys(6, 100)) want.insert(key);
  EXPECT_EQ(s.Resident(), want);
  // An evicted row reads as its initial values again, and a later push starts it afresh.
  std::vector<float> got(kWidth), init(kWidth);
  ASSERT_OK(s.store().ReadSparse(0, std::vector<Key>{old[0]}, got));
  ASSERT_OK(InitializeSparseRow(*s.cluster.map().param(0), old[0],
                                TensorView{init.data(), DType::kF32, {int64_t{kWidth}}, Device::kCPU}));
  EXPECT_EQ(got, init);
  ASSERT_OK(s.Push({old[0]}, 5));
  EXPECT_EQ(s.store().row(0, old[0])->updates, 1);
}

// Budgets under one row per partition (the tests' tiny limits): R = B / RowBytes rows
// dealt so shares differ by at most one and sum to R; a partition with a share of 0
// keeps no row between pushes. The table never holds more than B.
TEST(TableEviction, ABudgetOfFewerRowsThanPartitionsIsDealtEvenly) {
  uint64_t sum = 0;
  for (uint32_t part = 0; part < kSparsePartitions; ++part) {
    const uint64_t share = ShardStore::PartitionShare(300, part);
    ASSERT_LE(share, 1u);
    sum += share;
    ASSERT_EQ(ShardStore::PartitionShare(2 * kSparsePartitions + 7, part), 2 + ShardStore::PartitionShare(7, part));
  }
  EXPECT_EQ(sum, 300u);
  // Evenly over the servers of any count: 2 servers get 150 each, 3 get 100 each.
  for (uint32_t servers : {2u, 3u}) {
    std::vector<uint64_t> per(servers, 0);
    for (uint32_t part = 0; part < kSparsePartitions; ++part) per[part % servers] += ShardStore::PartitionShare(300, part);
    for (const uint64_t n : per) EXPECT_NEAR(static_cast<double>(n), 300.0 / servers, 1.0) << servers;
  }
  TablePolicy p;
  p.memory_limit = RowBytes() * 300;
  Store s(p);
  for (int64_t step = 0; step < 10; ++step) {
    ASSERT_OK(s.Push(Range(static_cast<Key>(step) * 400, static_cast<Key>(step + 1) * 400), step));
    ASSERT_LE(s.table().ResidentBytes(), p.memory_limit);
    for (uint32_t part = 0; part < kSparsePartitions; ++part) {
      ASSERT_LE(s.store().partition_rows(0, part), s.store().partition_cap(0, part));
    }
  }
  EXPECT_GT(s.store().table_stats(0).evicted, 0u);
  EXPECT_GT(s.table().size(), 100u);
}

TEST(TableEviction, ExpiryErasesRowsUnseenForNSteps) {
  TablePolicy p;
  p.expiry_steps = 8;  // swept at even steps
  Store s(p);
  ASSERT_OK(s.Push({1, 2}, 0));
  ASSERT_OK(s.Push({2, 3}, 1));
  for (int64_t step = 2; step < 8; ++step) ASSERT_OK(s.Push({2}, step));
  EXPECT_EQ(s.Resident(), (std::set<Key>{1, 2, 3})) << "7 steps unseen: kept";
  ASSERT_OK(s.Push({2}, 8));
  EXPECT_EQ(s.Resident(), (std::set<Key>{2, 3})) << "key 1: 8 steps unseen at step 8";
  ASSERT_OK(s.Push({2}, 9));
  EXPECT_EQ(s.Resident(), (std::set<Key>{2, 3})) << "odd step: no sweep, key 3 waits";
  ASSERT_OK(s.Push({2}, 10));
  EXPECT_EQ(s.Resident(), (std::set<Key>{2}));
  EXPECT_EQ(s.store().table_stats(0).expired, 2u);
  EXPECT_EQ(s.store().table_stats(0).evicted, 0u);
}

TEST(TableEviction, AdmissionGivesARowOnlyOnTheKthPush) {
  TablePolicy p;
  p.min_key_count = 3;
  p.sketch_width = 1024;
  Store s(p);
  Store plain(TablePolicy{});
  ASSERT_OK(s.Push({7, 100}, 0));
  ASSERT_OK(s.Push({7}, 1));
  EXPECT_EQ(s.table().size(), 0u);
  EXPECT_EQ(s.store().table_stats(0).dropped, 3u);
  ASSERT_OK(s.Push({100, 7, 8}, 2));  // 7's third push: admitted, between two dropped keys
  EXPECT_EQ(s.Resident(), (std::set<Key>{7}));
  EXPECT_FALSE(s.store().row(0, 100)) << "seen twice";
  EXPECT_FALSE(s.store().row(0, 8)) << "seen once";
  EXPECT_EQ(s.store().sketch(0)->Estimate(7), 3u);
  // Its one applied step is the gradient it was pushed with at step 2 (the batch was
  // compacted past the dropped row 100): what a store without admission makes of it.
  std::vector<float> g(3 * kWidth);
  for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, 2, i + std::vector<Key>{100, 7, 8}[i / kWidth]);
  ASSERT_OK(plain.store().ApplySparseRows(0, std::vector<Key>{7}, std::span<float>(g).subspan(kWidth, kWidth), 2));
  auto a = s.store().row(0, 7), b = plain.store().row(0, 7);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->values, b->values);
  EXPECT_EQ(a->updates, 1);
  ASSERT_OK(s.Push({7}, 3));
  EXPECT_EQ(s.store().row(0, 7)->updates, 2) << "resident rows are not filtered";
}

TEST(TableEviction, SnapshotRestoreKeepsLastSeenAndTheSketchAndSoEveryLaterEviction) {
  TablePolicy p;
  p.memory_limit = RowBytes() * 40;
  p.expiry_steps = 6;
  p.min_key_count = 2;
  p.sketch_width = 256;
  Store a(p), b(p);
  std::mt19937_64 rng(7);
  auto batch = [&](int64_t step) {
    std::set<Key> k;
    while (k.size() < 12) k.insert(rng() % 97 + static_cast<Key>(step));
    return std::vector<Key>(k.begin(), k.end());
  };
  for (int64_t step = 0; step < 20; ++step) ASSERT_OK(a.Push(batch(step), step));
  ASSERT_GT(a.store().table_stats(0).evicted + a.store().table_stats(0).expired, 0u);
  const ShardSnapshot snap = a.store().Snapshot();
  ASSERT_EQ(snap.sketches.size(), 1u);
  for (const RowState& r : snap.rows) {
    ASSERT_GE(r.last_seen, 0);
    ASSERT_OK(b.store().RestoreRow(r));
  }
  ASSERT_OK(b.store().RestoreSketch(0, snap.sketches[0].counts, false));
  EXPECT_EQ(b.store().Snapshot(), snap);
  EXPECT_EQ(b.store().Digest(), a.store().Digest());
  EXPECT_TRUE(*b.store().sketch(0) == *a.store().sketch(0));
  for (int64_t step = 20; step < 40; ++step) {
    const std::vector<Key> k = batch(step);
    ASSERT_OK(a.Push(k, step));
    ASSERT_OK(b.Push(k, step));
  }
  EXPECT_EQ(b.store().Snapshot(), a.store().Snapshot());
  EXPECT_EQ(b.store().Digest(), a.store().Digest());
  // Last-seen is in the digest: a row restored with another one differs.
  RowState r = snap.rows[0];
  r.last_seen += 1;
  Store c(p);
  ASSERT_OK(c.store().RestoreRow(snap.rows[0]));
  const uint64_t d = c.store().Digest();
  ASSERT_OK(c.store().RestoreRow(r));
  EXPECT_NE(c.store().Digest(), d);
  // Without a policy it is not (digests of tables without one are what they were).
  Store e(TablePolicy{});
  ASSERT_OK(e.store().RestoreRow(snap.rows[0]));
  const uint64_t d2 = e.store().Digest();
  ASSERT_OK(e.store().RestoreRow(r));
  EXPECT_EQ(e.store().Digest(), d2);
  EXPECT_FALSE(b.store().SetTablePolicy(0, p).ok()) << "a table with rows keeps its policy";
}

// Randomized, skewed keys: the store's resident set and counters against a model that
// applies the documented rules literally (create, last-seen, expiry sweep, and in every
// virtual partition over its share of B, evict the (last_seen, Mix64(key ^ salt),
// key)-smallest rows down to its share of 90 % of B). About 2.4 keys per partition
// against shares of 2 (cap) and 1 or 2 (kept).
TEST(TableEviction, MatchesAReferenceModelOverRandomPushes) {
  TablePolicy p;
  p.memory_limit = RowBytes() * kSparsePartitions;
  p.memory_servers = 2;
  p.expiry_steps = 12;
  Store s(p);
  const uint64_t salt = ParamNameHash("emb"), row_bytes = s.table().RowBytes();
  struct Ref {
    int64_t last_seen;
    int64_t updates;
  };
  std::map<Key, Ref> ref;
  std::mt19937_64 rng(11);
  for (int64_t step = 0; step < 300; ++step) {
    std::set<Key> ks;
    const size_t n = 1 + rng() % (step % 50 < 10 ? 150 : 20);  // bursts that hit the limit
    while (ks.size() < n) {
      const double u = std::uniform_real_distribution<double>(0, 1)(rng);
      ks.insert(static_cast<Key>(std::pow(u, 3) * 2000));  // skewed towards small keys
    }
    std::vector<Key> keys(ks.begin(), ks.end());
    std::shuffle(keys.begin(), keys.end(), rng);
    ASSERT_OK(s.Push(keys, step));
    for (Key k : keys) {
      Ref& r = ref.try_emplace(k, Ref{0, 0}).first->second;
      r.last_seen = step;
      ++r.updates;
    }
    if (step >= p.expiry_steps && step % (p.expiry_steps / 4) == 0) {
      std::erase_if(ref, [&](const auto& e) { return e.second.last_seen <= step - p.expiry_steps; });
    }
    const uint64_t budget = p.memory_limit * p.memory_servers;
    std::map<uint32_t, std::vector<std::tuple<int64_t, uint64_t, Key>>> parts;
    for (const auto& [k, r] : ref) parts[ShardMap::SparsePartitionOf(0, k)].emplace_back(r.last_seen, Mix64(k ^ salt), k);
    for (auto& [part, order] : parts) {
      if (order.size() <= ShardStore::PartitionShare(budget / row_bytes, part)) continue;
      std::sort(order.begin(), order.end());
      const uint64_t keep = ShardStore::PartitionShare(budget / 10 * 9 / row_bytes, part);
      for (size_t i = 0; i + keep < order.size(); ++i) ref.erase(std::get<2>(order[i]));
    }
    ASSERT_LE(s.table().ResidentBytes(), budget) << "step " << step;
    ASSERT_EQ(s.table().size(), ref.size()) << "step " << step;
    for (const auto& [k, r] : ref) {
      auto row = s.store().row(0, k);
      ASSERT_TRUE(row) << "key " << k << " step " << step;
      ASSERT_EQ(row->updates, r.updates) << "key " << k;
      ASSERT_EQ(row->last_seen, r.last_seen) << "key " << k;
    }
  }
  EXPECT_GT(s.store().table_stats(0).evicted, 0u);
  EXPECT_GT(s.store().table_stats(0).expired, 0u);
}

TEST(TableEviction, CountMinSketchNeverUnderestimatesAndLoadsChecked) {
  CountMinSketch a(64, 1), b(64, 1);
  std::map<Key, uint32_t> truth;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const Key k = rng() % 300;
    ++truth[k];
    a.Add(k);
  }
  for (const auto& [k, n] : truth) EXPECT_GE(a.Estimate(k), n);
  std::vector<float> counts;
  a.CountsInto(&counts);
  ASSERT_OK(b.Load(counts, false));
  EXPECT_TRUE(a == b);
  ASSERT_OK(b.Load(counts, true));  // merged: the sum, an upper bound of both
  for (const auto& [k, n] : truth) EXPECT_GE(b.Estimate(k), 2 * n);
  counts[3] = 0.5f;
  EXPECT_FALSE(b.Load(counts, false).ok());
  counts.pop_back();
  EXPECT_FALSE(b.Load(counts, false).ok());
  EXPECT_FALSE(a == b) << "a refused load changes nothing";
  EXPECT_TRUE(b == b);
}

}  // namespace
}  // namespace tessera::paramserver::testing
