// Software prefetches the compiler keeps, shared by the row store (paramserver/row_table.h)
// and the sparse optimizer (kernels/cpu/cpu_optimizer.cc).
//
// GCC 12 at -O2 deletes a call to a function whose only effect is __builtin_prefetch (its
// mod-ref summary says the call does nothing), together with the loads that compute the
// address: the row store's record prefetches once compiled to nothing
// (docs/benchmarks-sparse-latency.md, "The prefetches the compiler deleted"). A volatile
// asm is an effect it must keep. tests/paramserver/prefetches_kept.sh counts them in the
// machine code.
#pragma once

#include <cstdint>

namespace tessera {

// The cache line holding `p`, into L1 (prefetcht0) or, with kL2, into L2 only
// (prefetcht1: it does not hold one of L1's few miss buffers until the line arrives;
// why the row store's lookups use it: docs/benchmarks-sparse-step.md).
template <bool kL2 = false>
__attribute__((always_inline)) inline void PrefetchLine(const void* p) {
#if defined(__x86_64__)
  if constexpr (kL2) {
    asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
  } else {
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
  }
#else
  __builtin_prefetch(p, 0, kL2 ? 2 : 3);  // unverified off x86-64: GCC may delete these the same way
#endif
}

// Every line of [p, p + bytes), bytes > 0: the first and last byte's, and any between,
// without a loop for a span of up to 128 bytes (a row store record, a narrow row).
template <bool kL2 = false>
__attribute__((always_inline)) inline void PrefetchBytes(const void* p, uint64_t bytes) {
  const char* b = static_cast<const char*>(p);
  const uint64_t last = bytes - 1;
  PrefetchLine<kL2>(b);
  PrefetchLine<kL2>(b + last);
  for (uint64_t off = 64; off + 64 <= last; off += 64) PrefetchLine<kL2>(b + off);
}

}  // namespace tessera
