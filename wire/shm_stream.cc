#include "wire/shm_stream.h"

#include <gflags/gflags.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/stream_copy.h"
#include "wire/shm_arena.h"

DEFINE_int64(shm_stream_timeout_ms, 2000,
             "How long a receiver waits for the next bytes of a streamed shared-memory payload before it fails the "
             "request (a sender that stalled mid-copy; time the receiver itself was stopped, as in a suspended job, "
             "does not count)");

DEFINE_bool(shm_stream, true,
            "Same-host shared memory: send a dense push's descriptor before its gradient is copied, and a "
            "push+pull's reply before its values are written, each consumed as it arrives (both sides must allow it)");

namespace tessera::wire {

namespace {
std::atomic<uint64_t> g_forge_progress{0};
}  // namespace

void TEST_ForgeNextStreamProgress(uint64_t value) { g_forge_progress.store(value); }

void ShmStreamCopy(std::byte* dst, std::span<const std::byte> src, uint64_t* progress) {
  std::atomic_ref<uint64_t> word(*progress);
  if (g_forge_progress.load(std::memory_order_relaxed) != 0) {
    if (const uint64_t forged = g_forge_progress.exchange(0); forged != 0) {
      std::memcpy(dst, src.data(), src.size());
      word.store(forged, std::memory_order_release);
      return;
    }
  }
  for (uint64_t b = 0; b < src.size();) {
    const uint64_t len = std::min<uint64_t>(kShmStreamBlock, src.size() - b);
    PayloadCopy(dst + b, src.data() + b, len, src.size());
    b += len;
    word.store(b, std::memory_order_release);  // the block's bytes before the count
  }
}

Duration ShmStreamTimeout() { return std::chrono::milliseconds(std::max<int64_t>(1, FLAGS_shm_stream_timeout_ms)); }

Result<uint64_t> ShmStream::Ready() const {
  // The word is in the sender's memory: read it once, judge that value. (Only loaded:
  // atomic_ref<const T> is C++26, the mapping is writable anyway.)
  const uint64_t v = std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(progress_)).load(std::memory_order_acquire);
  if (v == kShmStreamAbandoned) return Status::Aborted("the sender abandoned the streamed payload (its log says why)");
  if (v > slot_.size()) {
    return Status::Corruption("streamed shared-memory payload: progress " + std::to_string(v) +
                              " beyond its length " + std::to_string(slot_.size()));
  }
  return v;
}

Status ShmStream::WaitFor(uint64_t bytes, Duration timeout) const {
  bytes = std::min<uint64_t>(bytes, slot_.size());
  // `timeout` counts only time this process spent waiting. A gap far longer than one
  // yield or nap between two checks means this process itself was not running (the whole
  // job suspended: Slurm's gang scheduling stops every process with SIGSTOP; a VM
  // paused), which says nothing about the sender: without this, a job resumed after a
  // suspend would fail the request it was in the middle of.
  constexpr Duration kNotRunning = std::chrono::milliseconds(250);
  Duration waited = Duration::zero();
  Clock::time_point last = Clock::now();
  // Spin for about the time a block takes to copy, then give the core away: on a small
  // machine the sender may need this very core to finish.
  for (int i = 0;; ++i) {
    TESSERA_ASSIGN_OR_RETURN(const uint64_t ready, Ready());
    if (ready >= bytes) return Status::OK();
    if (i < 256) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (now - last < kNotRunning) waited += now - last;
    last = now;
    if ((i & 63) == 0 && peer_ && peer_->PeerExited()) {
      return Status::Unavailable("streamed shared-memory payload: the sender exited after " + std::to_string(ready) +
                                 " of " + std::to_string(slot_.size()) + " bytes");
    }
    if (waited >= timeout) {
      return Status::TimedOut("streamed shared-memory payload: " + std::to_string(ready) + " of " +
                              std::to_string(slot_.size()) + " bytes written after waiting " +
                              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
                              " ms for more");
    }
    if (i < 2048) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace tessera::wire
