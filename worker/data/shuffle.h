// Deterministic per-epoch shuffling. The permutation is a pure function of
// (n, seed, epoch, rank): identical on every machine, compiler and standard library,
// because it uses only common/hash.h (splitmix64) and a hand-written Fisher-Yates with an
// unbiased rejection draw (std::shuffle and std::uniform_int_distribution are
// implementation-defined, so they are not used).
//
// Thread safety: pure functions and a value-type generator.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::data {

// splitmix64 stream: out = Mix64(state); state += golden ratio. Value type, copyable.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t Next();
  // Uniform integer in [0, bound) by rejection (no modulo bias). REQUIRES: bound > 0.
  uint64_t Below(uint64_t bound);
  uint64_t state() const { return state_; }

 private:
  uint64_t state_;
};

// Key of the shuffling stream for one worker's epoch.
uint64_t ShuffleKey(uint64_t seed, int64_t epoch, int64_t rank);

// A permutation of [0, n): Fisher-Yates from the top (i = n-1 .. 1, j = Below(i+1)) on the
// stream SplitMix64(ShuffleKey(seed, epoch, rank)). REQUIRES: n >= 0.
std::vector<int64_t> ShufflePermutation(int64_t n, uint64_t seed, int64_t epoch, int64_t rank);

}  // namespace tessera::data
