// Shared-memory arenas for same-host payloads (docs/wire_format.md, "Same-host shared
// memory").
//
// ShmTxArena is the sending side: an anonymous memfd (MFD_CLOEXEC, sealed against
// shrinking and growing, sparse: only touched pages cost memory) that its owner copies
// payloads into. Each payload lives in a slot: a 64-byte slot header holding an atomic
// state word and a progress word (a streamed payload's bytes written so far,
// wire/shm_stream.h), then the bytes. The state is the only thing both sides write: 0 = free, a token =
// sent, token | kShmClaimed = held by the receiver. The ring bookkeeping (which slots
// are outstanding, where the next one goes) is private to the owner, so a peer that
// scribbles on the arena can only make the owner reuse a slot early or never, never
// make it write outside the arena.
//
// ShmPeerArena is the receiving side: the peer's memfd, opened through
// /proc/<pid>/fd/<fd> (the kernel allows that only to the same uid, and we check
// st_uid, the memfd name and its seals too) and mapped shared. Claim() validates a
// descriptor (range inside the mapping, 64-byte aligned, the slot's state equals the
// descriptor's token) and returns a zero-copy Buffer whose release frees the slot.
//
// No file name ever exists: the kernel frees an arena when its last fd and mapping go,
// so nothing outlives kill -9. A surviving receiver unmaps the arena of a dead peer
// itself: a background reaper polls a pidfd of each mapped peer and replaces the
// mapping with an inaccessible anonymous one once the peer has exited and no Buffer
// of it is alive.
//
// Thread safety: ShmTxArena belongs to one thread (its socket's), except Abandon, which
// any thread may call (a reserved Buffer dropped elsewhere). ShmPeerArena::Claim
// is called by its socket's thread; the Buffers it returns may be released on any
// thread, and the reaper thread may detach it concurrently: both synchronise on the
// arena's mutex.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "common/status.h"
#include "common/tensor.h"

namespace tessera::wire {

inline constexpr uint64_t kShmSlotAlign = 64;       // slot headers and payloads
inline constexpr uint64_t kShmClaimed = 1ULL << 63;  // state bit: the receiver holds it
// Name prefix of every arena's memfd ("/memfd:tessera-shm-<pid>-<n>" in /proc/*/maps).
inline constexpr char kShmMemfdPrefix[] = "tessera-shm-";

// Where a payload was put: what the receiver needs to find and claim it.
struct ShmSlotRef {
  uint64_t offset = 0;  // of the payload bytes; the slot header is the 64 bytes before
  uint64_t length = 0;
  uint64_t token = 0;  // nonzero, kShmClaimed clear
};

class ShmTxArena {
 public:
  // A sealed memfd of `bytes` (rounded up to whole pages), mapped read-write.
  static Result<std::shared_ptr<ShmTxArena>> Create(uint64_t bytes);
  ~ShmTxArena();
  ShmTxArena(const ShmTxArena&) = delete;
  ShmTxArena& operator=(const ShmTxArena&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

  // Copies `bytes` into a free slot and marks it sent. Returns nullopt when no
  // contiguous free space is left (the caller sends over TCP instead).
  std::optional<ShmSlotRef> Put(std::span<const std::byte> bytes);
  // Takes a slot of `length` bytes (marked sent, as Put does) for the caller to fill
  // before sending it: a payload built in place costs no copy at all. nullopt as Put.
  std::optional<ShmSlotRef> Reserve(uint64_t length);
  std::byte* data(const ShmSlotRef& ref) const { return base_ + ref.offset; }
  // The slot's progress word (wire/shm_stream.h), 0 from Reserve on.
  uint64_t* progress(const ShmSlotRef& ref) const;
  // Frees a slot that was taken but never sent (the send failed, or a reserved Buffer
  // was dropped unsent). Thread-safe: only the slot's state word is written; the ring
  // reclaims it at the next Put or Reserve.
  void Abandon(const ShmSlotRef& ref);
  // Slots sent and not yet released by the receiver.
  size_t outstanding() {
    Reclaim();
    return slots_.size();
  }

 private:
  ShmTxArena(int fd, std::byte* base, uint64_t size) : fd_(fd), base_(base), size_(size) {}
  struct Slot {
    uint64_t start;  // of the slot header
    uint64_t end;    // one past the last payload byte, rounded to kShmSlotAlign
  };
  void Reclaim();
  uint64_t* State(uint64_t slot_start) const;

  const int fd_;
  std::byte* const base_;
  const uint64_t size_;
  std::deque<Slot> slots_;  // outstanding, in allocation (= ring) order
  uint64_t head_ = 0;       // where the next slot starts when it fits
  uint64_t next_token_ = 0;
};

class ShmPeerArena : public std::enable_shared_from_this<ShmPeerArena> {
 public:
  // Opens fd `fd` of process `pid` and maps it. Fails (with a reason fit for a log line)
  // when the fd cannot be opened, is not a Tessera memfd of this uid, is not sealed
  // against shrinking, or is not `bytes` long.
  static Result<std::shared_ptr<ShmPeerArena>> Open(pid_t pid, int fd, uint64_t bytes);
  ~ShmPeerArena();
  ShmPeerArena(const ShmPeerArena&) = delete;
  ShmPeerArena& operator=(const ShmPeerArena&) = delete;

  // Validates `ref` and claims its slot. Returns a Buffer over the slot (zero copy);
  // dropping its last reference frees the slot for the sender. Corruption naming the
  // problem when the range is outside the arena or misaligned, or the slot is not in
  // flight with this token (replayed, forged, already claimed); Unavailable when the
  // peer has exited and the arena was detached.
  // `progress`, when given, receives the slot's progress word (a streamed payload).
  Result<Buffer> Claim(const ShmSlotRef& ref, const uint64_t** progress = nullptr);

  pid_t pid() const { return pid_; }
  uint64_t size() const { return size_; }
  bool detached() const;
  // Whether the peer process has exited (its pidfd turned readable). Any thread.
  bool PeerExited() const;
  // Reaper: when the peer has exited and no claimed Buffer is alive, replaces the
  // mapping with an inaccessible one. Returns true once detached.
  bool DetachIfPeerGone();

 private:
  ShmPeerArena(pid_t pid, int pidfd, std::byte* base, uint64_t size)
      : pid_(pid), pidfd_(pidfd), base_(base), size_(size) {}
  void Release(uint64_t* state);

  const pid_t pid_;
  const int pidfd_;  // -1 when pidfd_open is unavailable (then kill(pid, 0) is used)
  std::byte* const base_;
  const uint64_t size_;
  mutable std::mutex mu_;
  int64_t live_ = 0;       // claimed Buffers alive; guarded by mu_
  bool detached_ = false;  // guarded by mu_
};

// Test hook: number of peer arenas currently mapped (not detached) in this process.
int64_t TEST_MappedPeerArenas();

}  // namespace tessera::wire
