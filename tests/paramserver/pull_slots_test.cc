// ShardStore's reuse of a pull's slots by the push of the same keys (PullSlots): taken
// exactly when the push's keys are byte-equal to a kept pull's, no row was erased since
// and, when rows were created since, few of its keys were absent (looked up again), and
// bitwise the lookup path's results either way (rows,
// counters, last-seen, digests, dirty rows, admission and eviction counts). Every case
// runs the same calls on two stores, one with the reuse off.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "paramserver/shard_store.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint64_t kWidth = 4;

Cluster MakeCluster() { return Cluster(1, 1, {SparseSpec("emb", kWidth, Adagrad())}, {SyncMode::kAsp, 0}); }

// The store with the reuse (on) and the reference without (off), fed the same calls.
struct Pair {
  explicit Pair(const TablePolicy& policy = {}) {
    EXPECT_OK(on().SetTablePolicy(0, policy));
    EXPECT_OK(off().SetTablePolicy(0, policy));
    off().SetReusePullSlots(false);
    on().TrackDirtyRows(true);
    off().TrackDirtyRows(true);
  }
  ShardStore& on() { return a.core(0).mutable_store(); }
  ShardStore& off() { return b.core(0).mutable_store(); }
  void Pull(const std::vector<Key>& keys) {
    std::vector<float> x(keys.size() * kWidth), y(keys.size() * kWidth);
    EXPECT_OK(on().ReadSparse(0, keys, x));
    EXPECT_OK(off().ReadSparse(0, keys, y));
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0);
  }
  // Pushes and returns whether `on` took the pull's slots.
  bool Push(const std::vector<Key>& keys, int64_t step) {
    std::vector<float> g(keys.size() * kWidth);
    for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i + keys[i / kWidth]);
    std::vector<float> h = g;
    const uint64_t before = on().pushes_reusing_pull_slots();
    EXPECT_OK(on().ApplySparseRows(0, keys, g, step));
    EXPECT_OK(off().ApplySparseRows(0, keys, h, step));
    EXPECT_EQ(off().pushes_reusing_pull_slots(), 0u);
    return on().pushes_reusing_pull_slots() != before;
  }
  // Everything both stores hold is the same, bit for bit.
  void ExpectSame() {
    EXPECT_EQ(on().Digest(), off().Digest());
    EXPECT_EQ(on().Snapshot(), off().Snapshot());
    EXPECT_EQ(on().TakeDirtyRows(), off().TakeDirtyRows());
    const TableStats x = on().table_stats(0), y = off().table_stats(0);
    EXPECT_EQ(x.created, y.created);
    EXPECT_EQ(x.evicted, y.evicted);
    EXPECT_EQ(x.expired, y.expired);
    EXPECT_EQ(x.dropped, y.dropped);
  }
  Cluster a = MakeCluster(), b = MakeCluster();
};

std::vector<Key> Range(Key from, Key to) {
  std::vector<Key> k;
  for (Key i = from; i < to; ++i) k.push_back(i);
  return k;
}

TEST(PullSlots, APushOfThePulledKeysReusesTheirSlots) {
  Pair p;
  const std::vector<Key> keys = Range(0, 100);
  p.Pull(keys);
  EXPECT_TRUE(p.Push(keys, 1));   // all absent at the pull, still absent: created
  EXPECT_FALSE(p.Push(keys, 2));  // those inserts changed the table: looked up
  p.Pull(keys);
  EXPECT_TRUE(p.Push(keys, 3));  // every row resident, nothing inserted since the pull
  EXPECT_TRUE(p.Push(keys, 4));  // the same pull, the table still unchanged
  p.ExpectSame();
}

TEST(PullSlots, TwoWorkersPullsAreKeptUntilTheirPushes) {
  Pair p;
  const std::vector<Key> a = Range(0, 50), b = Range(30, 90);
  EXPECT_FALSE(p.Push(Range(0, 90), 1));
  p.Pull(a);
  p.Pull(b);
  EXPECT_TRUE(p.Push(a, 2));
  EXPECT_TRUE(p.Push(b, 2));
  p.ExpectSame();
}

TEST(PullSlots, AnInsertSinceThePullOfManyAbsentKeysForcesTheLookup) {
  Pair p;
  EXPECT_FALSE(p.Push(Range(0, 40), 1));
  const std::vector<Key> keys = Range(20, 60);  // 40..59 absent at the pull: half the batch
  p.Pull(keys);
  EXPECT_FALSE(p.Push({45, 50}, 2));  // creates two of them
  // Reusing the pull's kNoSlot for 45 and 50 would create them a second time; looking 20
  // keys up one by one costs more than the pipelined lookup of all 40.
  EXPECT_FALSE(p.Push(keys, 3));
  EXPECT_EQ(p.on().num_rows(0), 60u);
  p.ExpectSame();
}

TEST(PullSlots, AnInsertSinceThePullOfFewAbsentKeysLooksThoseUpAgain) {
  Pair p;
  EXPECT_FALSE(p.Push(Range(0, 62), 1));
  const std::vector<Key> keys = Range(0, 64);  // 62 and 63 absent at the pull
  p.Pull(keys);
  EXPECT_FALSE(p.Push({63, 500}, 2));  // another worker creates 63 (and 500)
  // The found slots still hold (no erase); 62 and 63 are looked up again: 63 is found,
  // not created twice, and 62 created.
  EXPECT_TRUE(p.Push(keys, 3));
  EXPECT_EQ(p.on().num_rows(0), 65u);
  EXPECT_EQ(p.on().row(0, 63)->updates, 2);
  EXPECT_EQ(p.on().row(0, 62)->updates, 1);
  p.ExpectSame();
}

TEST(PullSlots, AnEraseSinceThePullForcesTheLookup) {
  Pair p;
  EXPECT_FALSE(p.Push(Range(0, 40), 1));
  const std::vector<Key> keys = Range(0, 40);
  p.Pull(keys);
  p.on().RestoreErase(0, 7);
  p.off().RestoreErase(0, 7);
  EXPECT_FALSE(p.Push(keys, 2));
  EXPECT_EQ(p.on().num_rows(0), 40u);
  p.ExpectSame();
}

TEST(PullSlots, AnEvictionSinceThePullForcesTheLookup) {
  TablePolicy policy;
  policy.expiry_steps = 4;  // rows unseen for 4 steps go at the next multiple of 1
  Pair p(policy);
  EXPECT_FALSE(p.Push(Range(0, 40), 1));
  const std::vector<Key> keys = Range(0, 40);
  p.Pull(keys);
  EXPECT_FALSE(p.Push(Range(100, 101), 10));  // step 10: 0..39 expire
  EXPECT_EQ(p.on().num_rows(0), 1u);
  EXPECT_FALSE(p.Push(keys, 11));
  EXPECT_EQ(p.on().num_rows(0), 41u);
  p.ExpectSame();
}

TEST(PullSlots, DifferentKeysOneKeyChangedOrAnotherOrderLookUp) {
  Pair p;
  EXPECT_FALSE(p.Push(Range(0, 64), 1));
  const std::vector<Key> keys = Range(0, 64);
  p.Pull(keys);
  std::vector<Key> changed = keys;
  changed[31] = 5000;  // same count, first and last key: only the memcmp tells
  EXPECT_FALSE(p.Push(changed, 2));  // and it inserts 5000
  p.Pull(keys);
  EXPECT_FALSE(p.Push(Range(0, 63), 3));  // a prefix
  std::vector<Key> swapped = keys;
  std::swap(swapped[3], swapped[4]);
  EXPECT_FALSE(p.Push(swapped, 4));
  EXPECT_TRUE(p.Push(keys, 5));
  p.ExpectSame();
}

TEST(PullSlots, MatchesTheLookupPathOverRandomTrafficWithEvictionAndAdmission) {
  TablePolicy policy;
  policy.min_key_count = 2;
  policy.memory_limit = 300 * RowTable(0, kWidth, 1).RowBytes();
  policy.expiry_steps = 20;
  Pair p(policy);
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<Key> pick(0, 999);
  std::vector<std::vector<Key>> pulled;
  int reused = 0;
  for (int64_t step = 1; step <= 300; ++step) {
    std::vector<Key> keys;
    for (int j = 0; j < 60; ++j) keys.push_back(pick(rng));
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    if (rng() % 4 != 0) {  // mostly: pull, then push what was pulled (maybe another worker's)
      p.Pull(keys);
      pulled.push_back(keys);
      if (pulled.size() > 2) pulled.erase(pulled.begin());
      keys = pulled[rng() % pulled.size()];
      if (rng() % 8 == 0) keys[rng() % keys.size()] = pick(rng) + 1000;  // one key changed
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    reused += p.Push(keys, step);
    ASSERT_EQ(p.on().Digest(), p.off().Digest()) << "step " << step;
    if (step % 50 == 0) p.ExpectSame();
  }
  EXPECT_GT(reused, 30);  // the path was taken, and not only in the quiet steps
  EXPECT_GT(p.on().table_stats(0).evicted + p.on().table_stats(0).expired, 0u);
  EXPECT_GT(p.on().table_stats(0).dropped, 0u);
  p.ExpectSame();
}

}  // namespace
}  // namespace tessera::paramserver::testing
