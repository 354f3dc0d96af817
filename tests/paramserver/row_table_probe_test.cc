// The row store's index compares keys, not only their tags (paramserver/row_table.h):
// keys that share a home entry and a tag, found by construction, each get their own row.
// Split from row_table_test.cc, which is at its size limit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "common/hash.h"
#include "paramserver/row_table.h"
#include "tests/paramserver/row_table_rows.h"

namespace tessera::paramserver::testing {
namespace {

// Keys sharing a home entry and the low 8 bits of their hash (the index entry's tag), so
// that only a compare of the key itself tells them apart: a lookup must skip every other
// key of its run, live or erased, and land on its own. The groups (two to four keys each)
// are found by drawing keys and computing their home on an index of known capacity (the
// table is reserved for them first; the hash, home and tag mirror RowTable's KeyHash, Home
// and Tag); every other key is erased, and each row holds its key in its floats and
// counter, so a lookup that took a neighbour's slot reads a wrong row. Through Find and
// ForEachSlot (read and write).
TEST(RowTable, KeysSharingAHomeEntryAndTagEachFindTheirOwnRow) {
  RowTable t(9, 2, 0);
  t.Reserve(4000);
  const uint64_t cap = t.index_capacity();
  // Every 32nd home only, so that the groups' runs stay apart.
  std::map<std::pair<uint64_t, uint64_t>, std::vector<Key>> groups;  // (home, tag) -> keys
  for (Key k = 1; k < 150000; ++k) {
    const uint64_t h = Mix64(k ^ 0x6a09e667f3bcc909ULL);
    const auto home = static_cast<uint64_t>((static_cast<unsigned __int128>(h) * cap) >> 64);
    if (home % 32 == 0) groups[{home, h & 0xff}].push_back(k);
  }
  std::vector<Key> shared;
  for (const auto& [home_tag, ks] : groups) {
    if (ks.size() >= 2) shared.insert(shared.end(), ks.begin(), ks.begin() + std::min<size_t>(ks.size(), 4));
  }
  ASSERT_GE(shared.size(), 200u) << "too few keys sharing a home and a tag";
  ASSERT_LE(shared.size(), 4000u);
  for (const Key k : shared) InsertRow(t, k, static_cast<float>(k % 100000), static_cast<int64_t>(k % 977));
  ASSERT_EQ(t.index_capacity(), cap) << "reserved: no rebuild, homes as computed";
  for (size_t i = 0; i < shared.size(); i += 2) t.Erase(shared[i]);
  std::vector<Key> keys = shared;
  keys.push_back(0);  // never inserted
  size_t present = 0;
  t.ForEachSlot(keys, [&](size_t i, uint32_t slot) {
    const bool absent = i == shared.size() || i % 2 == 0;
    ASSERT_EQ(slot == RowTable::kNoSlot, absent) << "key " << keys[i];
    ASSERT_EQ(t.Find(keys[i]), slot) << "key " << keys[i];
    if (absent) return;
    ASSERT_EQ(t.data(slot)[0], static_cast<float>(keys[i] % 100000)) << "another key's row for " << keys[i];
    ASSERT_EQ(t.updates(slot), static_cast<int64_t>(keys[i] % 977)) << keys[i];
    ++present;
  });
  EXPECT_EQ(present, shared.size() / 2);
  t.ForEachSlot<true>(keys, [&](size_t, uint32_t slot) {
    if (slot == RowTable::kNoSlot) return;
    t.BeginWrite(slot);
    t.updates(slot) += 1000;
    t.EndWrite(slot);
  });
  EXPECT_EQ(t.digest(), Recomputed(t));
  for (size_t i = 1; i < shared.size(); i += 2) {
    const uint32_t s = t.Find(shared[i]);
    ASSERT_NE(s, RowTable::kNoSlot);
    ASSERT_EQ(t.updates(s), static_cast<int64_t>(shared[i] % 977) + 1000) << shared[i];
    ASSERT_EQ(t.data(s)[1], static_cast<float>(shared[i] % 100000));
  }
}

}  // namespace
}  // namespace tessera::paramserver::testing
