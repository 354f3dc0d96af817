// Small deterministic hashes used for sharding, initialisers and digests.
// They are part of the checkpoint and sharding contracts: changing one changes
// which server owns a key and what a fresh row holds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera {

// splitmix64 finaliser: a bijective mixer of 64-bit values.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Combines values into one hash, order-sensitive.
constexpr uint64_t HashCombine(uint64_t seed, uint64_t v) { return Mix64(seed ^ Mix64(v)); }

// A uniform float in [0, 1) from 64 random bits (uses the top 24 bits).
constexpr float UnitFloat(uint64_t bits) { return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f); }

// FNV-1a 64 over bytes: digests of parameters (params_digest) and checkpoint values.
uint64_t Fnv1a64(const void* data, size_t n, uint64_t seed = 0xcbf29ce484222325ULL);

// A 64-bit hash of `n` bytes for digests that are summed (the store's per-row and
// per-chunk digests, paramserver/row_table.h): every 8-byte word goes through Mix64 in
// one of four independent lanes (so the multiply chains overlap), the lanes and the
// length are mixed at the end. Unlike FNV-1a a one-bit change flips about half the
// output bits, which a commutative sum of many hashes needs. Part of the checkpoint's
// store_digest contract.
uint64_t Hash64(const void* data, size_t n, uint64_t seed);

}  // namespace tessera
