// --auth=mac tags leave the thread's vector registers clean. OpenSSL's AVX2/AVX-512
// ChaCha20-Poly1305 code can return with the upper halves of the registers in use; every
// legacy-SSE loop the thread ran afterwards (Tessera's kernels) then paid for it: a
// 1 MiB optimizer pass took 6x longer on the thread that had just checked a tag
// (wire/mac_auth.cc). XGETBV with ECX=1 reports which register state is in use.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "wire/mac_auth.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace tessera::wire {
namespace {

#if defined(__x86_64__)
constexpr uint64_t kUpperYmm = uint64_t{1} << 2;  // XCR0 bit 2: the upper halves of YMM0-15
constexpr uint64_t kUpperZmm = uint64_t{1} << 6;  // bit 6: the upper halves of ZMM0-15

bool HaveXinuse() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return false;
  if (!__get_cpuid_count(0xD, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 2)) != 0;  // XGETBV with ECX=1 supported
}

uint64_t Xinuse() {
  uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
  return (uint64_t{hi} << 32) | lo;
}

TEST(MacVectorState, TagsLeaveTheUpperVectorHalvesUnused) {
  if (!HaveXinuse()) GTEST_SKIP() << "this CPU cannot report register state in use (XGETBV ECX=1)";
  // The check can see dirty state: set YMM1's upper half, then clear it.
  asm volatile("vpcmpeqd %%ymm1, %%ymm1, %%ymm1" ::: "xmm1");
  ASSERT_NE(Xinuse() & kUpperYmm, 0u) << "a 256-bit write did not show in XINUSE: the check would prove nothing";
  asm volatile("vzeroupper" ::: "memory");
  ASSERT_EQ(Xinuse() & (kUpperYmm | kUpperZmm), 0u);

  std::vector<std::byte> payload(size_t{1} << 20, std::byte{0x5a}), header(64, std::byte{1});
  const std::span<const std::byte> frames[] = {header, payload};
  MacKey key{};
  key.fill(7);
  for (MacPrimitive p : {MacPrimitive::kPoly1305, MacPrimitive::kGmac}) {
    auto mac = FrameMac::Create(p, key);
    ASSERT_TRUE(mac.ok()) << mac.status().ToString();
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      auto tag = (*mac)->Compute(seq, frames);
      ASSERT_TRUE(tag.ok()) << tag.status().ToString();
      EXPECT_EQ(Xinuse() & (kUpperYmm | kUpperZmm), 0u) << MacPrimitiveName(p) << " tag " << seq;
    }
  }
  DeriveJobMacKey(std::span<const uint8_t>(key.data(), key.size()));
  EXPECT_EQ(Xinuse() & (kUpperYmm | kUpperZmm), 0u) << "job key derivation";
}
#endif

}  // namespace
}  // namespace tessera::wire
