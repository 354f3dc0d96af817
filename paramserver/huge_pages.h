// Moving a row table's full record slabs to transparent huge pages off the reactor
// (paramserver/row_table.h, "Pages"). MADV_COLLAPSE copies the slab's 4 KiB pages into
// 2 MiB ones synchronously in the calling thread: about 0.1 s per 32 MiB slab on the
// dev VM, which on the reactor stalled every request of the server (and so, under bsp,
// every worker's step) once per 32 MiB of new rows. Here one background thread per
// process does it; the reactor only hands the range over.
//
// A range may be freed (its table destroyed) before the thread gets to it: madvise then
// fails on an unmapped range or collapses memory that was mapped there since, which
// keeps its contents either way. Collapse is a hint: where it fails (an old kernel, no
// huge page free) the slab keeps its 4 KiB pages.
//
// Thread safety: both functions may be called from any thread. The background thread
// owns nothing but the queue's ranges, and is never joined (it waits on its queue until
// the process exits).
#pragma once

#include <cstdint>

namespace tessera::paramserver {

// Queues [p, p + bytes) (2 MiB-aligned) for MADV_COLLAPSE on the background thread.
void CollapseToHugePagesLater(void* p, uint64_t bytes);
// Blocks until every range queued so far has been tried (tests, benchmarks).
void WaitForHugePageCollapses();

}  // namespace tessera::paramserver
