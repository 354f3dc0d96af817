#include "wire/alloc.h"

#include <cstdlib>
#include <mutex>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tessera::wire {

namespace {

struct FrameSlots {  // trivially destructible: usable after the guard below ran
  void* blocks[kSmallFramesPerThread];
  int n;
  bool gone;
};
thread_local FrameSlots t_frames{};
struct FrameSlotsGuard {
  ~FrameSlotsGuard() {
    t_frames.gone = true;
    while (t_frames.n > 0) std::free(t_frames.blocks[--t_frames.n]);
  }
};
thread_local FrameSlotsGuard t_frames_guard;

void GiveFrameBlock(void* p) {
  (void)&t_frames_guard;  // odr-use: the guard frees the cache at thread exit
  if (t_frames.gone || t_frames.n == kSmallFramesPerThread) {
    std::free(p);
    return;
  }
  t_frames.blocks[t_frames.n++] = p;
}

}  // namespace

Buffer FrameBuffer(size_t size) {
  if (size > kSmallFrameBytes) {
    void* p = std::malloc(size);
    if (p == nullptr) throw std::bad_alloc();  // as Buffer::Allocate does
    return Buffer::Wrap(p, size, Device::kCPU, [p] { std::free(p); });
  }
  (void)&t_frames_guard;
  void* p = t_frames.n > 0 ? t_frames.blocks[--t_frames.n] : std::malloc(kSmallFrameBytes);
  if (p == nullptr) throw std::bad_alloc();
  return Buffer::Wrap(p, size, Device::kCPU, [p] { GiveFrameBlock(p); });
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
