// StreamCopy and PayloadCopy (common/stream_copy.h), which write the same-host path's
// large payloads past the caches: every byte of the destination range is the source's,
// and not one byte outside it is touched, for every alignment of both ends and lengths
// around the 16-byte stores and 64-byte lines; PayloadCopy alike on both sides of its
// threshold.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "common/stream_copy.h"

namespace tessera {
namespace {

constexpr std::byte kGuard{0xA5};

std::vector<std::byte> Pattern(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + 7) % 251);
  return v;
}

// Copies n bytes from src + s_off to dst + d_off with `copy`; checks the range and guards.
template <typename Copy>
void CheckCopy(size_t n, size_t d_off, size_t s_off, Copy copy) {
  const std::vector<std::byte> src = Pattern(n + s_off + 64);
  std::vector<std::byte> dst(n + d_off + 128, kGuard);
  // 64-aligned base inside dst's storage, so d_off is the alignment the copy sees.
  const size_t base = (64 - reinterpret_cast<uintptr_t>(dst.data()) % 64) % 64;
  ASSERT_LE(base + d_off + n + 1, dst.size());
  copy(dst.data() + base + d_off, src.data() + s_off, n);
  ASSERT_EQ(std::memcmp(dst.data() + base + d_off, src.data() + s_off, n), 0)
      << n << " bytes, dst +" << d_off << ", src +" << s_off;
  for (size_t i = 0; i < base + d_off; ++i) ASSERT_EQ(dst[i], kGuard) << "before the range, byte " << i;
  for (size_t i = base + d_off + n; i < dst.size(); ++i) ASSERT_EQ(dst[i], kGuard) << "after the range, byte " << i;
}

TEST(StreamCopy, EveryAlignmentAndLength) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{63}, size_t{64}, size_t{65},
                   size_t{127}, size_t{128}, size_t{200}, size_t{4099}}) {
    for (size_t d_off = 0; d_off < 17; ++d_off) {
      for (size_t s_off : {size_t{0}, size_t{3}, size_t{16}}) CheckCopy(n, d_off, s_off, StreamCopy);
    }
  }
}

TEST(StreamCopy, PayloadCopyBothSidesOfTheThreshold) {
  // A block of a large payload (past the caches) and of a small one (memcpy): the same bytes.
  for (uint64_t payload : {kStreamCopyBytes - 1, kStreamCopyBytes, kStreamCopyBytes * 4}) {
    CheckCopy(131072 + 12, 4, 1, [payload](void* d, const void* s, size_t n) { PayloadCopy(d, s, n, payload); });
  }
  // A whole payload above the threshold, its end off a line.
  CheckCopy(kStreamCopyBytes + 44, 8, 0, [](void* d, const void* s, size_t n) { PayloadCopy(d, s, n, n); });
}

}  // namespace
}  // namespace tessera
