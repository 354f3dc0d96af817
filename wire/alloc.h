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

namespace tessera::wire {

// Applies the mallopt settings above. Idempotent and thread-safe; call it early in
// main. Returns false when glibc refused a setting (non-glibc
// libc: a no-op returning false).
bool TuneAllocatorForLargeMessages();

}  // namespace tessera::wire
