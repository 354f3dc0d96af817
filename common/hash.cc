#include "common/hash.h"

#include <cstring>

namespace tessera {

uint64_t Fnv1a64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t Hash64(const void* data, size_t n, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h0 = Mix64(seed), h1 = Mix64(seed + 1), h2 = Mix64(seed + 2), h3 = Mix64(seed + 3);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, sizeof(w));
    h0 = Mix64(h0 ^ w[0]);
    h1 = Mix64(h1 ^ w[1]);
    h2 = Mix64(h2 ^ w[2]);
    h3 = Mix64(h3 ^ w[3]);
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof(w));
    h0 = Mix64(h0 ^ w);
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h1 = Mix64(h1 ^ w ^ (uint64_t{0xff} << 56));
  }
  return Mix64(h0 ^ Mix64(h1 ^ Mix64(h2 ^ Mix64(h3 ^ n))));
}

}  // namespace tessera
