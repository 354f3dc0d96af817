// The flat sparse row store (paramserver/row_table.h) and ShardStore over it: growth,
// tombstones and slot reuse, the incremental digest (order and placement invariance,
// coverage of slots and counters), the batched optimizer against the per-row one, a
// bitwise snapshot/restore round trip, and a randomized run against a std::map.
#include "paramserver/row_table.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <utility>

#include "common/hash.h"
#include "kernels/optimizer_step.h"
#include "kernels/param_init.h"
#include "paramserver/huge_pages.h"
#include "paramserver/shard_store.h"
#include "tests/paramserver/row_table_rows.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

TEST(RowTable, GrowsAcrossChunksAndIndexRebuildsKeepingEveryRow) {
  RowTable t(7, 4, 1);
  ASSERT_EQ(t.chunk_rows(), RowTable::kMaxChunkRows);
  const uint64_t n = 3 * t.chunk_rows() + 17;
  for (uint64_t i = 0; i < n; ++i) InsertRow(t, i * 0x9e3779b97f4a7c15ULL, static_cast<float>(i));
  ASSERT_EQ(t.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t s = t.Find(i * 0x9e3779b97f4a7c15ULL);
    ASSERT_NE(s, RowTable::kNoSlot) << i;
    ASSERT_EQ(t.data(s)[7], static_cast<float>(i)) << "row moved or overwritten: " << i;
  }
  EXPECT_EQ(t.Find(12345), RowTable::kNoSlot);
  EXPECT_EQ(t.digest(), Recomputed(t));
  // 4 chunks of records (no last-seen array without HashLastSeen), an index of 5-byte
  // entries at most 4/5 full and at least 4/7.
  const double per_row = static_cast<double>(t.MemoryBytes()) / static_cast<double>(n);
  const double slot = 8 + 8 + 8 * 4;  // key, counter, floats
  EXPECT_LT(per_row, slot * 4 * t.chunk_rows() / n + 5 / (4.0 / 7) + 1) << per_row;
}

// The index grows by 1.4x when it passes 4/5 full (to 4/7): per row it costs between
// 5/0.8 and 5/0.571 bytes at every size; Reserve makes room for a batch at once.
// Past kSlabBytes of records the arena moves to 2 MiB-aligned slabs, each collapsed to
// huge pages when the next starts, on a background thread: rows written before, during
// and after keep their bits.
TEST(RowTable, RowsSurviveTheMoveToSlabsAndTheirCollapse) {
  RowTable t(7, 64, 1);  // 528-byte records, 8192 per 4.3 MB chunk: slabs after 8 chunks
  const uint64_t per_slab = (uint64_t{32} << 20) / (t.chunk_rows() * 528) * t.chunk_rows();
  const uint64_t n = 8 * t.chunk_rows() + 2 * per_slab + 100;  // a third slab: two collapsed
  for (uint64_t i = 0; i < n; ++i) InsertRow(t, Mix64(i), static_cast<float>(i), static_cast<int64_t>(i));
  // While the collapses may still run: every row written again.
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t s = t.Find(Mix64(i));
    ASSERT_NE(s, RowTable::kNoSlot) << i;
    t.BeginWrite(s);
    t.data(s)[1] = static_cast<float>(i) + 0.5f;
    t.EndWrite(s);
  }
  WaitForHugePageCollapses();
  const uint64_t digest = t.digest();
  EXPECT_EQ(digest, Recomputed(t));
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t s = t.Find(Mix64(i));
    ASSERT_NE(s, RowTable::kNoSlot) << i;
    ASSERT_EQ(t.updates(s), static_cast<int64_t>(i));
    ASSERT_EQ(t.data(s)[0], static_cast<float>(i)) << i;
    ASSERT_EQ(t.data(s)[1], static_cast<float>(i) + 0.5f) << i;
    ASSERT_EQ(t.data(s)[t.stride() - 1], static_cast<float>(i)) << i;
  }
}

// A range freed before the background thread got to it (its table destroyed) is
// harmless: the collapse fails or hits memory mapped there since, keeping its bytes.
TEST(RowTable, ACollapseOfFreedMemoryIsHarmless) {
  constexpr size_t k2M = size_t{1} << 21;
  void* gone = ::mmap(nullptr, 2 * k2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(gone, MAP_FAILED);
  ASSERT_EQ(::munmap(gone, 2 * k2M), 0);
  CollapseToHugePagesLater(gone, 2 * k2M);
  std::vector<uint64_t> kept(k2M / 8);
  for (size_t i = 0; i < kept.size(); ++i) kept[i] = Mix64(i);
  CollapseToHugePagesLater(kept.data(), k2M);  // not aligned, in use: a no-op or a copy
  WaitForHugePageCollapses();
  for (size_t i = 0; i < kept.size(); ++i) ASSERT_EQ(kept[i], Mix64(i)) << i;
}

// ForEachSlot (the pipelined lookup) gives every key, in order, what Find gives, over
// present, absent and erased keys, batches shorter and longer than its look-ahead, and
// an empty table; and f may write the rows it is handed.
TEST(RowTable, ForEachSlotAgreesWithFind) {
  RowTable empty(7, 4, 0);
  const std::vector<Key> few = {1, 2, 3};
  std::vector<uint32_t> got(few.size(), 0);
  empty.FindMany(few, got.data());
  EXPECT_EQ(got, std::vector<uint32_t>(3, RowTable::kNoSlot));
  RowTable t(7, 4, 0);
  std::mt19937_64 rng(5);
  for (uint64_t i = 0; i < 50000; ++i) InsertRow(t, Mix64(i), 1.0f);
  for (uint64_t i = 0; i < 50000; i += 3) t.Erase(Mix64(i));
  for (const size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{17}, size_t{4096}}) {
    std::vector<Key> keys;
    for (size_t j = 0; j < n; ++j) keys.push_back(Mix64(rng() % 60000));  // ~1/6 never inserted
    std::vector<size_t> order;
    t.ForEachSlot(keys, [&](size_t i, uint32_t slot) {
      order.push_back(i);
      ASSERT_EQ(slot, t.Find(keys[i])) << "key " << i << " of " << n;
      if (slot != RowTable::kNoSlot) t.data(slot)[0] += 1.0f;  // writing is allowed
    });
    std::vector<size_t> want(n);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(order, want);
  }
}

// Stage 2 of ForEachSlot takes the first entry of a key's run with the key's 8-bit tag as
// its candidate, and stage 3 walks the run again when the candidate holds another key (a
// tag collision). Over every one of 300,000 keys and 300,000 absent ones, at the index's
// load (4/7 to 4/5), some hundreds of present and some thousands of absent keys meet a
// colliding tag first (about 1/256 per entry they pass); each must still get Find's answer,
// in the read and the write variant.
TEST(RowTable, ForEachSlotResolvesTagCollisionsLikeFind) {
  RowTable t(9, 2, 0);
  constexpr uint64_t kRows = 300000;
  for (uint64_t i = 0; i < kRows; ++i) InsertRow(t, Mix64(i), 1.0f);
  std::vector<Key> keys;
  for (uint64_t i = 0; i < 2 * kRows; ++i) keys.push_back(Mix64(i));
  std::mt19937_64 rng(3);
  std::shuffle(keys.begin(), keys.end(), rng);
  size_t present = 0;
  t.ForEachSlot(keys, [&](size_t i, uint32_t slot) {
    ASSERT_EQ(slot, t.Find(keys[i])) << "key " << i;
    if (slot != RowTable::kNoSlot) {
      ASSERT_EQ(t.key(slot), keys[i]);
      ++present;
    }
  });
  EXPECT_EQ(present, kRows);
  t.ForEachSlot<true>(keys, [&](size_t i, uint32_t slot) {
    ASSERT_EQ(slot, t.Find(keys[i])) << "key " << i;
    if (slot == RowTable::kNoSlot) return;
    t.BeginWrite(slot);
    ++t.updates(slot);
    t.EndWrite(slot);
  });
  EXPECT_EQ(t.digest(), Recomputed(t));
  for (uint64_t i = 0; i < kRows; ++i) ASSERT_EQ(t.updates(t.Find(Mix64(i))), 2) << i;
}

TEST(RowTable, IndexStaysBetweenFourSeventhsAndFourFifthsFull) {
  RowTable t(3, 4, 0);  // 32-byte records: key, counter, 4 floats
  uint64_t checked = 0, grew = 0, capacity = 0;
  for (uint64_t i = 0; i < 300000; ++i) {
    InsertRow(t, Mix64(i), 1.0f);
    if (t.index_capacity() != capacity) {
      if (capacity >= 1000) {
        ASSERT_EQ(t.index_capacity(), capacity + capacity * 2 / 5) << t.size();
        ++grew;
      }
      capacity = t.index_capacity();
    }
    if (t.size() >= 1000) {
      const double load = static_cast<double>(t.size()) / static_cast<double>(t.index_capacity());
      ASSERT_GE(load, 4.0 / 7 - 0.001) << t.size();
      ASSERT_LE(load, 0.8) << t.size();
      ++checked;
    }
  }
  EXPECT_GT(grew, 5u);
  const uint64_t before = t.index_capacity();
  t.Reserve(200000);  // the room for 200,000 more now: one rebuild
  const uint64_t reserved = t.index_capacity();
  EXPECT_GE(reserved * 3, (t.size() + 200000) * 5);
  EXPECT_GT(reserved, before);
  for (uint64_t i = 300000; i < 500000; ++i) InsertRow(t, Mix64(i), 2.0f);
  EXPECT_EQ(t.index_capacity(), reserved) << "no rebuild while the reserved keys arrive";
  for (uint64_t i = 0; i < 500000; ++i) ASSERT_EQ(t.data(t.Find(Mix64(i)))[3], i < 300000 ? 1.0f : 2.0f) << i;
  EXPECT_EQ(t.digest(), Recomputed(t));
}

// Last-seen arrays exist only with HashLastSeen: without, writes go nowhere and reads
// give 0, and the table is 4 bytes a row smaller; switching it on (on an empty table
// whose chunks exist) gives every chunk its array.
TEST(RowTable, LastSeenArraysOnlyWithHashLastSeen) {
  RowTable plain(1, 4, 0), seen(1, 4, 0);
  seen.HashLastSeen(true);
  for (Key k = 0; k < 1000; ++k) {
    InsertRow(plain, k, 1.0f);
    const uint32_t s = seen.Insert(k);
    std::fill(seen.data(s), seen.data(s) + seen.stride(), 1.0f);
    seen.last_seen(s) = static_cast<uint32_t>(k);
    seen.EndWrite(s);
  }
  EXPECT_EQ(seen.MemoryBytes() - plain.MemoryBytes(), plain.chunk_rows() * 4);
  for (Key k = 0; k < 1000; ++k) EXPECT_EQ(seen.last_seen(seen.Find(k)), k);
  plain.last_seen(plain.Find(5)) = 9;  // no array: a scratch word
  EXPECT_EQ(std::as_const(plain).last_seen(plain.Find(5)), 0u);
  EXPECT_NE(plain.digest(), seen.digest()) << "last-seen is hashed with HashLastSeen only";
  for (Key k = 0; k < 1000; ++k) plain.Erase(k);
  plain.HashLastSeen(true);
  const uint32_t s = plain.Insert(7);
  EXPECT_EQ(plain.last_seen(s), 0u);
  plain.last_seen(s) = 3;
  EXPECT_EQ(plain.last_seen(s), 3u);
  plain.EndWrite(s);
}

// The digest is summed lazily (rows written since the last digest() are hashed then):
// rows written many times, erased while stale, their slots reused, and rows written
// after a digest all end up in the sum exactly once.
TEST(RowTable, LazyDigestCountsEveryResidentRowOnce) {
  RowTable t(5, 3, 1);
  for (Key k = 0; k < 300; ++k) InsertRow(t, k, 1.0f);
  for (int round = 0; round < 3; ++round) {
    for (Key k = 0; k < 300; k += 3) WriteRow(t, t.Find(k), static_cast<float>(round), round + 2);
  }
  for (Key k = 1; k < 300; k += 3) t.Erase(k);  // stale (never in the sum) when erased
  EXPECT_EQ(t.digest(), Recomputed(t));
  for (Key k = 2; k < 300; k += 3) WriteRow(t, t.Find(k), 7.0f, 9);  // stale after a digest
  for (Key k = 0; k < 300; k += 3) t.Erase(k);
  for (Key k = 1000; k < 1150; ++k) InsertRow(t, k, 3.0f);  // into the freed slots
  EXPECT_EQ(t.digest(), Recomputed(t));
  EXPECT_EQ(t.digest(), Recomputed(t)) << "a second digest() adds nothing twice";
  for (Key k = 1000; k < 1150; ++k) t.Erase(k);
  for (Key k = 2; k < 300; k += 3) t.Erase(k);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.digest(), 0u);
}

// Odd strides pad the record to 8 bytes; the padding is neither a value nor hashed.
TEST(RowTable, OddStridesKeepRowsApart) {
  RowTable t(1, 3, 0);
  for (Key k = 0; k < 100; ++k) InsertRow(t, k, static_cast<float>(k));
  for (Key k = 0; k < 100; ++k) {
    const float* d = t.data(t.Find(k));
    for (int j = 0; j < 3; ++j) ASSERT_EQ(d[j], static_cast<float>(k)) << k;
    ASSERT_EQ(t.key(t.Find(k)), k);
  }
  EXPECT_EQ(t.digest(), Recomputed(t));
}

TEST(RowTable, WideRowsGetSmallerChunks) {
  RowTable t(1, 1 << 20, 2);  // 12 MiB per row: one row per chunk
  EXPECT_EQ(t.chunk_rows(), 1u);
  for (Key k = 0; k < 3; ++k) InsertRow(t, k, static_cast<float>(k));
  for (Key k = 0; k < 3; ++k) EXPECT_EQ(t.data(t.Find(k))[(3 << 20) - 1], static_cast<float>(k));
  EXPECT_EQ(RowTable(1, 1024, 0).chunk_rows(), 2048u);  // 4 KiB rows: 8 MiB chunks
}

TEST(RowTable, ErasedSlotsAreReusedAndTombstonesDoNotHideRows) {
  RowTable t(1, 2, 0);
  for (Key k = 0; k < 1000; ++k) InsertRow(t, k, 1.0f);
  const uint32_t limit = t.slot_limit();
  for (Key k = 0; k < 1000; k += 2) t.Erase(k);
  EXPECT_EQ(t.size(), 500u);
  t.Erase(5000);  // absent: no-op
  EXPECT_EQ(t.size(), 500u);
  for (Key k = 1; k < 1000; k += 2) ASSERT_NE(t.Find(k), RowTable::kNoSlot) << k;
  for (Key k = 0; k < 1000; k += 2) ASSERT_EQ(t.Find(k), RowTable::kNoSlot) << k;
  for (Key k = 2000; k < 2500; ++k) InsertRow(t, k, 2.0f);
  EXPECT_EQ(t.slot_limit(), limit) << "new rows must take the freed slots";
  EXPECT_EQ(t.size(), 1000u);
  for (Key k = 2000; k < 2500; ++k) ASSERT_EQ(t.data(t.Find(k))[0], 2.0f);
  EXPECT_EQ(t.digest(), Recomputed(t));
  // Many erase/insert cycles at a constant size: tombstones get purged, memory stays put.
  const uint64_t bytes = t.MemoryBytes();
  for (int round = 0; round < 50; ++round) {
    for (Key k = 2000; k < 2500; ++k) t.Erase(k + round * 1000);
    for (Key k = 2000; k < 2500; ++k) InsertRow(t, k + (round + 1) * 1000, 3.0f);
  }
  EXPECT_EQ(t.size(), 1000u);
  EXPECT_LE(t.MemoryBytes(), bytes * 2);
  EXPECT_EQ(t.digest(), Recomputed(t));
}

TEST(RowTable, DigestIsIndependentOfInsertionOrderAndCoversSlotsAndCounters) {
  std::vector<Key> keys(5000);
  std::iota(keys.begin(), keys.end(), 100);
  RowTable a(3, 2, 2), b(3, 2, 2);
  for (Key k : keys) InsertRow(a, k, static_cast<float>(k % 17));
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(5));
  for (Key k : keys) InsertRow(b, k, static_cast<float>(k % 17));
  EXPECT_EQ(a.digest(), b.digest());
  const uint64_t d = a.digest();
  // One slot float (not a value) changes the digest; restoring it restores the digest.
  const uint32_t s = a.Find(200);
  a.BeginWrite(s);
  a.data(s)[a.stride() - 1] += 1.0f;
  a.EndWrite(s);
  EXPECT_NE(a.digest(), d);
  a.BeginWrite(s);
  a.data(s)[a.stride() - 1] -= 1.0f;
  a.EndWrite(s);
  EXPECT_EQ(a.digest(), d);
  WriteRow(a, s, static_cast<float>(200 % 17), 2);  // counter only
  EXPECT_NE(a.digest(), d);
  // Another table name, same rows: another digest.
  RowTable c(4, 2, 2);
  for (Key k : keys) InsertRow(c, k, static_cast<float>(k % 17));
  EXPECT_NE(c.digest(), b.digest());
}

TEST(RowTable, DirtyKeysAreTrackedOnceAndTakenInOrder) {
  RowTable t(1, 1, 0);
  InsertRow(t, 5, 1.0f);
  t.TrackDirty(true);
  InsertRow(t, 9, 1.0f);
  WriteRow(t, t.Find(5), 2.0f, 2);
  WriteRow(t, t.Find(5), 3.0f, 3);
  WriteRow(t, t.Find(9), 3.0f, 3);
  EXPECT_EQ(t.TakeDirty(), (std::vector<Key>{5, 9}));
  EXPECT_TRUE(t.TakeDirty().empty());
  WriteRow(t, t.Find(9), 4.0f, 4);
  t.MarkDirty(5);
  t.Erase(9);
  EXPECT_EQ(t.TakeDirty(), (std::vector<Key>{5, 9}));
  // An erased row's slot reused by another key: listed once, under the new key.
  WriteRow(t, t.Find(5), 5.0f, 5);
  t.Erase(5);
  InsertRow(t, 77, 1.0f);
  std::vector<uint32_t> slots;
  std::vector<Key> erased;
  t.TakeDirty(&slots, &erased);
  ASSERT_EQ(slots.size(), 1u);
  EXPECT_EQ(t.key(slots[0]), 77u);
  EXPECT_EQ(erased, std::vector<Key>{5});
}

TEST(ShardStoreRows, IncrementalSnapshotCopiesOnlyChangedRows) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  Cluster c(1, 1, {SparseSpec("emb", 4, adam)}, {SyncMode::kAsp, 0});
  ShardStore& store = c.core(0).mutable_store();
  std::vector<Key> keys(1000);
  std::iota(keys.begin(), keys.end(), 0);
  std::vector<float> g(keys.size() * 4, 0.5f);
  ASSERT_OK(store.ApplySparseRows(0, keys, g));
  store.TrackDirtyRows(true);
  const std::vector<Key> changed = {3, 500, 999, 5000};
  g.assign(changed.size() * 4, 0.25f);
  ASSERT_OK(store.ApplySparseRows(0, changed, g));
  ShardSnapshot inc;
  std::vector<std::pair<uint32_t, Key>> taken;
  store.SnapshotDirtyInto(&inc, &taken);
  ASSERT_EQ(inc.rows.size(), changed.size());
  std::sort(inc.rows.begin(), inc.rows.end(), [](const RowState& a, const RowState& b) { return a.key < b.key; });
  for (size_t i = 0; i < changed.size(); ++i) {
    EXPECT_EQ(inc.rows[i].key, changed[i]);
    EXPECT_EQ(inc.rows[i], *store.row(0, changed[i]));
  }
  EXPECT_EQ(taken.size(), changed.size());
  store.SnapshotDirtyInto(&inc, &taken);
  EXPECT_TRUE(inc.rows.empty()) << "taken once";
  for (const auto& [id, key] : std::vector<std::pair<uint32_t, Key>>{{0, 3}, {0, 5000}}) store.MarkDirty(id, key);
  EXPECT_EQ(store.TakeDirtyRows(), (std::vector<std::pair<uint32_t, Key>>{{0, 3}, {0, 5000}}));
}

// Randomized: inserts, erases, writes and lookups against a std::map, checking the
// digest against a from-scratch sum now and then.
TEST(RowTable, MatchesAStdMapOverRandomOperations) {
  RowTable t(11, 2, 1);
  std::map<Key, std::pair<int64_t, float>> ref;
  std::mt19937_64 rng(42);
  const Key kKeys = 200000;  // dense enough for hits, sparse enough for misses
  for (int op = 0; op < 1500000; ++op) {
    const Key k = rng() % kKeys;
    const uint32_t s = t.Find(k);
    auto it = ref.find(k);
    ASSERT_EQ(s != RowTable::kNoSlot, it != ref.end()) << "op " << op << " key " << k;
    switch (rng() % 4) {
      case 0:
      case 1:  // write (insert when absent)
        if (s == RowTable::kNoSlot) {
          InsertRow(t, k, static_cast<float>(op), 1);
          ref[k] = {1, static_cast<float>(op)};
        } else {
          WriteRow(t, s, static_cast<float>(op), t.updates(s) + 1);
          it->second = {it->second.first + 1, static_cast<float>(op)};
        }
        break;
      case 2:
        t.Erase(k);
        ref.erase(k);
        break;
      default:
        if (s != RowTable::kNoSlot) {
          ASSERT_EQ(t.updates(s), it->second.first);
          ASSERT_EQ(t.data(s)[t.stride() - 1], it->second.second);
          ASSERT_EQ(t.key(s), k);
        }
    }
    if (op % 300000 == 0) {
      ASSERT_EQ(t.digest(), Recomputed(t)) << "op " << op;
    }
  }
  ASSERT_EQ(t.size(), ref.size());
  for (const auto& [k, v] : ref) {
    const uint32_t s = t.Find(k);
    ASSERT_NE(s, RowTable::kNoSlot);
    ASSERT_EQ(t.updates(s), v.first);
  }
  EXPECT_EQ(t.digest(), Recomputed(t));
}

OptimizerConfig Adam(float clip = 0) {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.05f;
  o.weight_decay = 0.01f;
  o.clip_norm = clip;
  return o;
}

// ApplySparseRows gives each row the bits of the per-row path (clip, ApplyUpdate).
TEST(ShardStoreRows, BatchedOptimizerMatchesThePerRowStepBitwise) {
  for (const float clip : {0.0f, 0.3f}) {
    Cluster c(1, 1, {SparseSpec("emb", 8, Adam(clip))}, {SyncMode::kAsp, 0});
    ShardStore& store = c.core(0).mutable_store();
    const ParamSpec spec = *c.map().param(0);
    std::map<Key, std::pair<std::vector<float>, std::vector<float>>> ref;  // values, slots
    std::map<Key, int64_t> count;
    for (int step = 0; step < 5; ++step) {
      const std::vector<Key> keys = {3, 1000 + static_cast<Key>(step), 7, 42};
      std::vector<float> g(keys.size() * 8);
      for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i);
      for (size_t i = 0; i < keys.size(); ++i) {
        auto& [v, sl] = ref[keys[i]];
        if (v.empty()) {
          v.resize(8);
          sl.resize(16);
          ASSERT_OK(InitializeSparseRow(spec, keys[i], TensorView{v.data(), DType::kF32, {8}, Device::kCPU}));
          ASSERT_OK(kernels::InitSlots(spec.optimizer, sl, 8));
        }
        std::vector<float> gi(g.begin() + static_cast<ptrdiff_t>(i * 8), g.begin() + static_cast<ptrdiff_t>(i * 8 + 8));
        ASSERT_OK(kernels::ApplyUpdate(spec.optimizer, ++count[keys[i]], v, sl, gi));
      }
      ASSERT_OK(store.ApplySparseRows(0, keys, g));
    }
    for (const auto& [k, vs] : ref) {
      auto row = store.row(0, k);
      ASSERT_TRUE(row.has_value());
      EXPECT_EQ(row->updates, count[k]);
      EXPECT_EQ(std::memcmp(row->values.data(), vs.first.data(), 32), 0) << "key " << k << " clip " << clip;
      EXPECT_EQ(std::memcmp(row->slots.data(), vs.second.data(), 64), 0) << "key " << k << " clip " << clip;
    }
  }
}

// A push whose optimizer fails part-way (a restored row with a counter below 0 gives
// step 0) counts no update: every counter it touched is what it was (ApplySparseRows
// counts them as it looks the rows up and takes them back), the row it created stays
// at 0, and the digest still matches the rows (a store restored from a snapshot of
// them has the same).
TEST(ShardStoreRows, FailedPushCountsNoUpdateAndKeepsTheDigest) {
  Cluster a(1, 1, {SparseSpec("emb", 4, Adam())}, {SyncMode::kAsp, 0});
  ShardStore& store = a.core(0).mutable_store();
  std::vector<float> g(3 * 4, 0.5f);
  ASSERT_OK(store.ApplySparseRows(0, std::vector<Key>{1, 2}, std::span<float>(g).first(8)));
  RowState bad = *store.row(0, 2);
  bad.key = 3;
  bad.updates = -1;
  ASSERT_OK(store.RestoreRow(bad));
  const uint64_t before = store.SparseDigest();
  EXPECT_FALSE(store.ApplySparseRows(0, std::vector<Key>{1, 3, 5}, g).ok());
  EXPECT_EQ(store.row(0, 1)->updates, 1);
  EXPECT_EQ(store.row(0, 3)->updates, -1);
  ASSERT_TRUE(store.row(0, 5).has_value());
  EXPECT_EQ(store.row(0, 5)->updates, 0);
  EXPECT_NE(store.SparseDigest(), before);  // row 1 was stepped before row 3 failed, row 5 is new
  Cluster b(1, 1, {SparseSpec("emb", 4, Adam())}, {SyncMode::kAsp, 0});
  for (const RowState& r : a.core(0).Snapshot().rows) ASSERT_OK(b.core(0).mutable_store().RestoreRow(r));
  EXPECT_EQ(b.core(0).store().SparseDigest(), store.SparseDigest());
  std::vector<float> g1(4, 0.5f);
  ASSERT_OK(store.ApplySparseRows(0, std::vector<Key>{1}, g1));
  EXPECT_EQ(store.row(0, 1)->updates, 2);
}

TEST(ShardStoreRows, SnapshotRestoreRoundTripIsBitwiseAndKeepsTheDigest) {
  Cluster a(1, 1, {DenseSpec("w", {6}, Adam()), SparseSpec("emb", 4, Adam())}, {SyncMode::kAsp, 0});
  Cluster b(1, 1, {DenseSpec("w", {6}, Adam()), SparseSpec("emb", 4, Adam())}, {SyncMode::kAsp, 0});
  for (int step = 0; step < 3; ++step) {
    std::vector<Key> keys;
    for (Key k = 0; k < 300; ++k) keys.push_back(k * 7 + static_cast<Key>(step));
    std::vector<float> g(keys.size() * 4);
    for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i);
    ASSERT_OK(a.PushSparse(0, 1, step, keys, g));
  }
  const ShardSnapshot snap = a.core(0).Snapshot();
  ASSERT_EQ(snap.rows.size(), a.core(0).store().num_rows(1));
  for (const RowState& r : snap.rows) ASSERT_OK(b.core(0).mutable_store().RestoreRow(r));
  EXPECT_EQ(b.core(0).Snapshot(), snap);
  EXPECT_EQ(b.core(0).Digest(), a.core(0).Digest());
  EXPECT_EQ(b.core(0).store().SparseDigest(), a.core(0).store().SparseDigest());
  // Restoring over an existing row replaces it and its hash.
  RowState r = snap.rows[0];
  r.slots[0] += 1.0f;
  ASSERT_OK(b.core(0).mutable_store().RestoreRow(r));
  EXPECT_NE(b.core(0).Digest(), a.core(0).Digest());
  EXPECT_EQ(b.core(0).store().num_rows(1), snap.rows.size());
}

// The job-wide digest (sum over servers) does not depend on the server count or on the
// order keys arrive in.
TEST(ShardStoreRows, SummedDigestIsIndependentOfServerCountAndKeyOrder) {
  auto run = [](int servers, bool reverse) {
    Cluster c(servers, 1, {DenseSpec("w", {20}, Adam()), SparseSpec("emb", 4, Adam())}, {SyncMode::kAsp, 0});
    for (int step = 0; step < 3; ++step) {
      std::vector<Key> keys;
      for (Key k = 0; k < 500; ++k) keys.push_back(k * 13 + static_cast<Key>(step) * 3);
      std::vector<float> g(keys.size() * 4);
      for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, step, i);
      if (reverse) {
        std::reverse(keys.begin(), keys.end());
        for (size_t i = 0; i < keys.size() / 2; ++i) {
          std::swap_ranges(g.begin() + static_cast<ptrdiff_t>(i * 4), g.begin() + static_cast<ptrdiff_t>(i * 4 + 4),
                           g.end() - static_cast<ptrdiff_t>((i + 1) * 4));
        }
      }
      EXPECT_OK(c.PushSparse(0, 1, step, keys, g));
      std::vector<float> gd(20);
      for (size_t i = 0; i < gd.size(); ++i) gd[i] = Grad(0, step, i + 7);
      EXPECT_OK(c.PushDense(0, 0, step, gd));
    }
    uint64_t d = 0;
    for (int s = 0; s < servers; ++s) d += c.core(s).Digest();
    return d;
  };
  const uint64_t one = run(1, false);
  EXPECT_EQ(run(3, false), one);
  EXPECT_EQ(run(2, true), one);
}

}  // namespace
}  // namespace tessera::paramserver::testing
