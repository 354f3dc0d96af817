// worker/key_groups.h against std::stable_sort, a plain per-key sum and copy, and
// ShardMap::SplitSparse.
#include "worker/key_groups.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

namespace tessera::worker {
namespace {

void ExpectLikeStableSort(const std::vector<Key>& keys) {
  KeyGroups g;
  ASSERT_TRUE(GroupKeys(keys, &g).ok());
  std::vector<uint32_t> order(keys.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  ASSERT_EQ(g.positions, order);
  std::vector<Key> unique(keys);
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  ASSERT_EQ(g.unique, unique);
  ASSERT_EQ(g.begin.size(), unique.size() + 1);
  for (size_t u = 0; u < unique.size(); ++u) {
    for (uint32_t t = g.begin[u]; t < g.begin[u + 1]; ++t) ASSERT_EQ(keys[g.positions[t]], unique[u]);
  }
}

TEST(KeyGroups, OrdersLikeAStableSortForSmallAndFullWidthKeys) {
  std::mt19937_64 rng(3);
  for (const uint64_t range : {uint64_t{1}, uint64_t{50}, uint64_t{10000000}, ~uint64_t{0}}) {
    std::vector<Key> keys(5000);
    for (auto& k : keys) k = range == ~uint64_t{0} ? rng() : rng() % range;
    ExpectLikeStableSort(keys);
  }
  ExpectLikeStableSort({});
  ExpectLikeStableSort({7});
  ExpectLikeStableSort({uint64_t{1} << 63, 0, uint64_t{1} << 63, 5});
}

TEST(KeyGroups, SumGroupsAddsDuplicatesInInputOrder) {
  const std::vector<Key> keys = {9, 4, 9, 9, 4, 1};
  const uint64_t w = 3;
  std::vector<float> grads(keys.size() * w);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = 0.1f * static_cast<float>(i) - 0.7f;
  KeyGroups g;
  ASSERT_TRUE(GroupKeys(keys, &g).ok());
  ASSERT_EQ(g.unique, (std::vector<Key>{1, 4, 9}));
  const std::vector<uint64_t> rows = {2, 0};  // key 9 then key 1
  std::vector<float> out(rows.size() * w);
  SumGroups(g, rows, grads.data(), w, out.data());
  for (uint64_t c = 0; c < w; ++c) {
    const float nine = (grads[0 * w + c] + grads[2 * w + c]) + grads[3 * w + c];
    EXPECT_EQ(std::memcmp(&out[c], &nine, 4), 0);
    EXPECT_EQ(out[w + c], grads[5 * w + c]);
  }
}

// Every width SumGroups has a compiled-in copy for (8, 16, 32, 64) and some it has not:
// the same bits as a plain loop, duplicates added in input order.
TEST(KeyGroups, SumGroupsIsThePlainSumAtEveryWidth) {
  std::mt19937_64 rng(5);
  std::vector<Key> keys(3000);
  for (auto& k : keys) k = rng() % 1000;
  KeyGroups g;
  ASSERT_TRUE(GroupKeys(keys, &g).ok());
  std::vector<uint64_t> rows(g.unique.size());
  std::iota(rows.rbegin(), rows.rend(), uint64_t{0});  // groups in reverse
  for (const uint64_t w : {uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{16}, uint64_t{32}, uint64_t{33}, uint64_t{64}}) {
    std::vector<float> grads(keys.size() * w);
    for (auto& x : grads) x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) / 77.0f;
    std::vector<float> out(rows.size() * w), want(rows.size() * w);
    SumGroups(g, rows, grads.data(), w, out.data());
    for (size_t j = 0; j < rows.size(); ++j) {
      for (uint64_t c = 0; c < w; ++c) {
        float sum = 0.0f;
        bool first = true;
        for (size_t i = 0; i < keys.size(); ++i) {
          if (keys[i] != g.unique[rows[j]]) continue;
          sum = first ? grads[i * w + c] : sum + grads[i * w + c];
          first = false;
        }
        want[j * w + c] = sum;
      }
    }
    ASSERT_EQ(std::memcmp(out.data(), want.data(), out.size() * sizeof(float)), 0) << "width " << w;
  }
}

// ScatterGroups (a pull reply's rows to the caller's rows) at the widths it has a
// compiled-in copy for and some it has not: every input row receives its key's reply
// row, and only the input rows of the groups named are written.
TEST(KeyGroups, ScatterGroupsCopiesEachReplyRowToEveryRowOfItsKey) {
  std::mt19937_64 rng(6);
  std::vector<Key> keys(3000);
  for (auto& k : keys) k = rng() % 1000;
  KeyGroups g;
  ASSERT_TRUE(GroupKeys(keys, &g).ok());
  // Every other group, in reverse: the rest of the output must stay untouched.
  std::vector<uint64_t> rows;
  for (uint64_t u = g.unique.size(); u-- > 0;) {
    if (u % 2 == 0) rows.push_back(u);
  }
  for (const uint64_t w : {uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{16}, uint64_t{32}, uint64_t{33}, uint64_t{64}}) {
    std::vector<float> reply(rows.size() * w);
    for (auto& x : reply) x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000) / 77.0f;
    std::vector<float> out(keys.size() * w, -5.0f), want(keys.size() * w, -5.0f);
    ScatterGroups(g, rows, reply.data(), w, out.data());
    for (size_t j = 0; j < rows.size(); ++j) {
      for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i] != g.unique[rows[j]]) continue;
        std::memcpy(&want[i * w], &reply[j * w], w * sizeof(float));
      }
    }
    ASSERT_EQ(std::memcmp(out.data(), want.data(), out.size() * sizeof(float)), 0) << "width " << w;
  }
}

// GroupAndSplitKeys: the grouping of GroupKeys, and its distinct keys split by owner
// exactly as ShardMap::SplitSparse splits them (what the push and the pull of a step
// both send, from the one split).
TEST(KeyGroups, GroupAndSplitKeysSplitsTheDistinctKeysByOwner) {
  std::mt19937_64 rng(9);
  std::vector<Key> keys(4000);
  for (auto& k : keys) k = rng() % 3000;
  ParamSpec table;
  table.name = "t";
  table.kind = ParamKind::kSparse;
  table.shape = {4};
  for (const int servers : {1, 2, 3}) {
    std::vector<ServerEndpoint> eps;
    for (int s = 0; s < servers; ++s) eps.push_back({s + 1, "inproc://s" + std::to_string(s)});
    auto map = ShardMap::Build(ShardMapOptions{}, eps, {table});
    ASSERT_TRUE(map.ok()) << map.status().ToString();
    KeyGroups g, plain;
    ASSERT_TRUE(GroupAndSplitKeys(keys, *map, 0, &g).ok());
    ASSERT_TRUE(GroupKeys(keys, &plain).ok());
    EXPECT_EQ(g.unique, plain.unique);
    EXPECT_EQ(g.begin, plain.begin);
    EXPECT_EQ(g.positions, plain.positions);
    auto want = map->SplitSparse(0, g.unique);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(g.split.keys, want->keys) << servers << " servers";
    EXPECT_EQ(g.split.positions, want->positions) << servers << " servers";
    ASSERT_EQ(g.split.keys.size(), static_cast<size_t>(servers));
  }
  KeyGroups g;
  auto map = ShardMap::Build(ShardMapOptions{}, {{1, "inproc://s0"}}, {table});
  ASSERT_TRUE(map.ok());
  EXPECT_FALSE(GroupAndSplitKeys(keys, *map, 7, &g).ok()) << "an unknown table";
}

}  // namespace
}  // namespace tessera::worker
