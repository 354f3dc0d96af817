// Copies of large payloads that bypass the caches: the same-host path's writes into
// shared-memory arenas (the gradient into the worker's arena, a push+pull's updated values
// into the server's) and the worker's copy of a large reply into the caller's tensor
// (docs/benchmarks-shm.md).
//
// A plain store to a line not in cache reads the line from memory first (read for
// ownership) only to overwrite it: a copy costs three passes over memory, not two. glibc's
// memcpy skips that read with non-temporal stores, but only for one call bigger than about
// 3/4 of the L3 cache, and these payloads are copied in blocks of 32-128 KiB (streamed
// and mirrored block by block), each far below that. A payload of kStreamCopyBytes or more
// outgrows L2 anyway and is read by another process long after its first block was
// written, so keeping it in cache buys nothing.
//
// Thread safety: pure functions, a thread-local size (ScopedPayloadBytes) and an atomic
// counter.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace tessera {

// Payloads of at least this many bytes are copied with StreamCopy (the whole payload's
// size decides, not a block's, so every block of one payload is copied alike).
inline constexpr uint64_t kStreamCopyBytes = uint64_t{4} << 20;

// Bytes StreamCopy has copied in this process: tests check that every copy of a large
// payload took it. One relaxed add per call (a block of 32-128 KiB or a whole payload).
inline std::atomic<uint64_t> g_stream_copied_bytes{0};

// memcpy(dst, src, n) with non-temporal stores (x86-64, SSE2: every x86-64 CPU has
// them; elsewhere plain memcpy). Ends with a store fence: non-temporal stores are not
// ordered by a later release store, and callers publish the bytes with one
// (ShmStreamPublish) or hand them to another thread.
inline void StreamCopy(void* dst, const void* src, size_t n) {
  g_stream_copied_bytes.fetch_add(n, std::memory_order_relaxed);
#if defined(__x86_64__)
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  // Up to the first 16-byte boundary of dst with ordinary stores (movntdq needs it).
  const size_t head = std::min(n, static_cast<size_t>(-reinterpret_cast<uintptr_t>(d) & 15));
  std::memcpy(d, s, head);
  d += head;
  s += head;
  n -= head;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {  // one cache line per iteration: four loads, then four stores
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 32));
    const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 48), e);
  }
  std::memcpy(d + i, s + i, n - i);
  _mm_sfence();
#else
  std::memcpy(dst, src, n);
#endif
}

// The size of the payload this thread is writing piece by piece where the writer sees only
// a piece: the parameter server's reply to a push+pull, mirrored chunk by chunk
// (--chunk_bytes, 1 MiB by default) by kernels::ApplyUpdateReadOnly. Set for a scope by
// ScopedPayloadBytes; 0 outside one.
inline thread_local uint64_t t_payload_bytes = 0;

class ScopedPayloadBytes {
 public:
  explicit ScopedPayloadBytes(uint64_t bytes) : prev_(t_payload_bytes) { t_payload_bytes = bytes; }
  ~ScopedPayloadBytes() { t_payload_bytes = prev_; }
  ScopedPayloadBytes(const ScopedPayloadBytes&) = delete;
  ScopedPayloadBytes& operator=(const ScopedPayloadBytes&) = delete;

 private:
  const uint64_t prev_;
};

// StreamCopy when the payload being copied (of which this call may be one block) has
// `payload_bytes` >= kStreamCopyBytes, else memcpy: a small payload is read while its
// lines are still in cache.
inline void PayloadCopy(void* dst, const void* src, size_t n, uint64_t payload_bytes) {
  if (payload_bytes >= kStreamCopyBytes) {
    StreamCopy(dst, src, n);
  } else {
    std::memcpy(dst, src, n);
  }
}

}  // namespace tessera
