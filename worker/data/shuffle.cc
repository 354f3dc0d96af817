#include "worker/data/shuffle.h"

#include <numeric>
#include <utility>

#include "common/hash.h"

namespace tessera::data {

uint64_t SplitMix64::Next() {
  const uint64_t out = Mix64(state_);
  state_ += 0x9e3779b97f4a7c15ULL;
  return out;
}

uint64_t SplitMix64::Below(uint64_t bound) {
  // Accept x >= 2^64 mod bound: the accepted range is a multiple of bound.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t x = Next();
    if (x >= threshold) return x % bound;
  }
}

uint64_t ShuffleKey(uint64_t seed, int64_t epoch, int64_t rank) {
  constexpr uint64_t kShuffleDomain = 0x53485546464c4531ULL;  // "SHUFFLE1"
  uint64_t h = HashCombine(kShuffleDomain, seed);
  h = HashCombine(h, static_cast<uint64_t>(epoch));
  return HashCombine(h, static_cast<uint64_t>(rank));
}

std::vector<int64_t> ShufflePermutation(int64_t n, uint64_t seed, int64_t epoch, int64_t rank) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  SplitMix64 rng(ShuffleKey(seed, epoch, rank));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

}  // namespace tessera::data
