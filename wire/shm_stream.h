// Streamed shared-memory payloads (docs/wire_format.md, "Streamed payloads"): the sender
// sends a payload's descriptor before the bytes are in the slot and publishes how many
// bytes it has written so far in the slot header's progress word, so the receiver's
// wake-up overlaps the sender's copy and the receiver consumes the payload block by
// block as it arrives.
//
// ShmStreamWriter is the sender's half: it copies into a reserved slot in blocks and
// publishes progress with a release store after each. ShmStream is the receiver's half:
// it reads the progress word (acquire) and waits for a prefix of the payload. The word
// lives in the sender's memory, so the receiver trusts none of it: a value beyond the
// slot's length, or the sender's "abandoned" mark, fails the wait, and every wait has a
// time limit (--shm_stream_timeout_ms of waiting for the next bytes), so a sender that
// dies or stalls mid-copy fails one request instead of wedging the receiver's loop.
//
// Thread safety: a ShmStreamWriter runs on the sending socket's thread. A ShmStream is
// immutable after construction and may be read from any thread; it holds the claimed
// slot's Buffer, so the mapping stays valid while it lives.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "common/clock.h"
#include "common/status.h"
#include "common/tensor.h"

namespace tessera::wire {

class ShmPeerArena;

// Offset of the progress word in a slot header (the state word is at 0).
inline constexpr uint64_t kShmProgressOffset = 8;
// Progress value of a streamed payload its sender gave up on.
inline constexpr uint64_t kShmStreamAbandoned = ~uint64_t{0};
// Bytes the sender copies between two progress stores: four of the optimizer's
// 8192-float blocks, so a store is rare and the receiver's first block comes early.
inline constexpr uint64_t kShmStreamBlock = 128 << 10;

// Copies `src` into `dst` (a reserved slot of src.size() bytes) block by block,
// publishing the bytes written so far to `*progress` after each block.
void ShmStreamCopy(std::byte* dst, std::span<const std::byte> src, uint64_t* progress);

// Publishes that the first `bytes` of a streamed payload are written (or
// kShmStreamAbandoned): the writer of a payload built in place.
inline void ShmStreamPublish(uint64_t* progress, uint64_t bytes) {
  std::atomic_ref<uint64_t>(*progress).store(bytes, std::memory_order_release);
}

// The default limit of a wait on a streamed payload (--shm_stream_timeout_ms).
Duration ShmStreamTimeout();

class ShmStream {
 public:
  // `progress`: the slot's progress word; `slot`: the claimed payload (kept alive);
  // `peer`: the sender's arena, to notice the sender's exit during a wait (may be null).
  ShmStream(const uint64_t* progress, Buffer slot, std::shared_ptr<const ShmPeerArena> peer = nullptr)
      : progress_(progress), slot_(std::move(slot)), peer_(std::move(peer)) {}
  uint64_t length() const { return slot_.size(); }
  // Bytes the sender has published as written. Corruption when the word is beyond the
  // slot's length; Aborted when the sender abandoned the payload.
  Result<uint64_t> Ready() const;
  // Returns once the first `bytes` (clamped to the length) are written: spins briefly,
  // then yields, then sleeps in short naps. TimedOut after waiting `timeout` for them,
  // counting only the time this process ran (a suspended job's stop does not count: a
  // stall is the sender's); Unavailable once the sender process has exited.
  Status WaitFor(uint64_t bytes, Duration timeout) const;

 private:
  const uint64_t* progress_;
  Buffer slot_;
  std::shared_ptr<const ShmPeerArena> peer_;
};

// Test hook: the next ShmStreamCopy in this process copies every byte but publishes
// `value` as its progress, once (a sender that stalls: value < length; one that
// scribbles: value > length). 0: none.
void TEST_ForgeNextStreamProgress(uint64_t value);

}  // namespace tessera::wire
