#include "worker/data/shuffle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace tessera::data {
namespace {

bool IsPermutation(std::vector<int64_t> p) {
  std::sort(p.begin(), p.end());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

TEST(Shuffle, PermutationIsFrozen) {
  // Golden values, computed by an independent Python transcription of the documented rule
  // (docs/models.md). A change here changes every resumed run's data order.
  EXPECT_EQ(ShufflePermutation(10, 42, 0, 0), (std::vector<int64_t>{8, 1, 3, 4, 5, 0, 7, 9, 2, 6}));
  EXPECT_EQ(ShufflePermutation(10, 42, 1, 0), (std::vector<int64_t>{3, 2, 1, 5, 9, 6, 7, 4, 0, 8}));
  EXPECT_EQ(ShufflePermutation(10, 42, 0, 1), (std::vector<int64_t>{0, 6, 5, 9, 7, 2, 8, 3, 1, 4}));
}

TEST(Shuffle, SameSeedEpochAndWorkerGiveTheSamePermutation) {
  const auto a = ShufflePermutation(60000, 7, 3, 2);
  const auto b = ShufflePermutation(60000, 7, 3, 2);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(IsPermutation(a));
}

TEST(Shuffle, AnotherEpochWorkerOrSeedGivesAnotherPermutation) {
  const auto base = ShufflePermutation(1000, 7, 3, 2);
  EXPECT_NE(base, ShufflePermutation(1000, 7, 4, 2));
  EXPECT_NE(base, ShufflePermutation(1000, 7, 3, 1));
  EXPECT_NE(base, ShufflePermutation(1000, 8, 3, 2));
  EXPECT_TRUE(IsPermutation(ShufflePermutation(1000, 7, 4, 2)));
}

TEST(Shuffle, TinySizesAreValid) {
  EXPECT_TRUE(ShufflePermutation(0, 1, 0, 0).empty());
  EXPECT_EQ(ShufflePermutation(1, 1, 0, 0), (std::vector<int64_t>{0}));
}

TEST(Shuffle, PositionsAreRoughlyUniform) {
  // Where does element 0 land, over many epochs? Each of 8 slots expects 1000 of 8000.
  std::vector<int> where(8, 0);
  for (int64_t epoch = 0; epoch < 8000; ++epoch) {
    const auto p = ShufflePermutation(8, 5, epoch, 0);
    ++where[std::find(p.begin(), p.end(), 0) - p.begin()];
  }
  for (int s = 0; s < 8; ++s) {
    EXPECT_GT(where[s], 850) << "slot " << s;
    EXPECT_LT(where[s], 1150) << "slot " << s;
  }
}

TEST(SplitMix64, BelowStaysInRange) {
  SplitMix64 rng(123);
  for (uint64_t bound : {1ULL, 2ULL, 3ULL, 1000ULL, (1ULL << 63) + 1}) {
    for (int i = 0; i < 100; ++i) EXPECT_LT(rng.Below(bound), bound) << "bound " << bound;
  }
}

}  // namespace
}  // namespace tessera::data
