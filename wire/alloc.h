// Allocator tuning for large messages.
//
// ZeroMQ allocates every large received frame itself with malloc, and glibc serves
// blocks above its mmap threshold (at most 32 MiB) with a fresh mmap that is unmapped
// again on free. In the VMs we run on, first-touching a fresh 64 MiB mapping costs
// ~210 ms of page faults (docs/benchmarks-transport.md, PLATFORM.md §3), so every 64 MiB
// message would pay that. Turning mmap off for malloc (M_MMAP_MAX = 0), never trimming
// the heap (M_TRIM_THRESHOLD) and using one malloc arena (M_ARENA_MAX = 1, because
// glibc mmaps large blocks of non-main arenas regardless of M_MMAP_MAX, and ZeroMQ
// allocates on its I/O thread) makes a freed 64 MiB block go back to the heap and be
// reused, already faulted in, by the next message of that size.
//
// The costs: memory freed by large messages stays in the process (it is reused, not
// returned to the OS), and threads share one arena lock for allocations the per-thread
// cache does not serve. That is the right trade for a training process whose message
// sizes repeat every step and whose hot loops do not malloc.
//
// REQUIRES: called before threads that allocate are started (in particular before the
// first wire::Context, whose I/O thread would otherwise pick its own arena).
#pragma once

#include <cstddef>

#include "common/tensor.h"

namespace tessera::wire {

// Host memory for one small message frame (a received frame ZeroMQ packed at an odd
// offset, a reply payload): `size` bytes, 16-byte aligned, uninitialised, size > 0.
//
// Frames of at most kSmallFrameBytes come from a cache of 8 KiB blocks owned by the
// thread that frees them (at most kSmallFramesPerThread each; more go back to malloc):
// glibc's per-thread cache stops at 1 KiB, so a 4 KiB round trip took the allocator's
// shared lock for each such frame on both sides. The Buffer's release puts the block in
// the cache of whichever thread drops the last reference (the thread that received it,
// for a request or reply read and dropped where it was read). Larger frames use malloc.
inline constexpr size_t kSmallFrameBytes = 8192;
inline constexpr int kSmallFramesPerThread = 8;
Buffer FrameBuffer(size_t size);

// Applies the mallopt settings above. Idempotent and thread-safe; call it early in
// main. Returns false when glibc refused a setting (non-glibc
// libc: a no-op returning false).
bool TuneAllocatorForLargeMessages();

}  // namespace tessera::wire
