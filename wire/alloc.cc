#include "wire/alloc.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "wire/thread_cache.h"

namespace tessera::wire {

namespace {

// Uninitialised: ThreadCache does not zero a trivially constructible block. The Buffer's
// shared state lives in the block too (`owner`, made anew by each FrameBuffer), so a
// cached frame costs no allocation at all.
struct alignas(16) FrameBlock {
  std::byte bytes[kSmallFrameBytes];
  alignas(Buffer::Owner) std::byte owner[sizeof(Buffer::Owner)];
  static void Reset(FrameBlock&) {}
};
using FrameCache = ThreadCache<FrameBlock, kSmallFramesPerThread>;

void GiveBack(Buffer::Owner* o) {
  o->~Owner();
  FrameCache::Give(reinterpret_cast<FrameBlock*>(reinterpret_cast<std::byte*>(o) - offsetof(FrameBlock, owner)));
}

}  // namespace

Buffer FrameBuffer(size_t size) {
  if (size > kSmallFrameBytes) {
    void* p = std::malloc(size);
    if (p == nullptr) throw std::bad_alloc();  // as Buffer::Allocate does
    return Buffer::Wrap(p, size, Device::kCPU, [p] { std::free(p); });
  }
  FrameBlock* b = FrameCache::Take();  // operator new throws bad_alloc itself
  return Buffer::Adopt(new (b->owner) Buffer::Owner(b->bytes, size, Device::kCPU, &GiveBack));
}

bool TuneAllocatorForLargeMessages() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
#if defined(__GLIBC__)
    // M_MMAP_MAX = 0: large blocks come from the heap (main arena, sbrk), where a freed
    // block is kept for reuse. M_TRIM_THRESHOLD: never give the heap top back to the OS,
    // or the next large message would fault its pages in again. glibc caps
    // M_MMAP_THRESHOLD at 32 MiB, so raising the threshold alone cannot cover 64 MiB.
    //
    // M_ARENA_MAX = 1: ZeroMQ allocates received frames on its I/O thread, and a thread's
    // own (non-main) arena lives in heaps of at most 64 MiB; a larger block there is
    // always mmap'ed, whatever M_MMAP_MAX says (glibc's sysmalloc falls back to mmap for
    // non-main arenas), and unmapped on free. One arena sends every thread's large
    // blocks to the main heap. Small allocations stay fast through the per-thread tcache.
    const bool a = mallopt(M_MMAP_MAX, 0) == 1;
    const bool b = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;  // int: 1 GiB of free top
    const bool c = mallopt(M_ARENA_MAX, 1) == 1;
    ok = a && b && c;
#endif
  });
  return ok;
}

}  // namespace tessera::wire
