// The same-host local link of a Socket (docs/wire_format.md, "Same-host local link").
//
// Once a DEALER<->ROUTER connection has a working shared-memory channel (so both ends
// are on one host, wire/shm_channel.h), its messages can leave ZeroMQ for a Unix-domain
// stream socket that each side's Reactor polls directly. On one host a ZeroMQ message
// wakes three threads (sender's loop -> its I/O thread -> the receiver's I/O thread ->
// the receiver's loop); over the link it wakes one, the receiver's loop.
//
// A LocalLink is one such connected fd: the same frames ZeroMQ would carry (header,
// shared-memory descriptor, small payloads, the --auth=mac trailer), each behind an
// 8-byte little-endian prefix: bit 63 "more frames follow", bits 0..62 the length. A
// length over the socket's max frame size, or more frames in one message than a
// message may have, is a protocol error: the link is dropped (never a crash, never an
// allocation of the claimed size).
//
// The set-up (LINK_OFFER / LINK_HELLO / LINK_SWITCH / LINK_REFUSE transport frames),
// the listener and its nonce check live in Socket (wire/socket_link.cc); this file only
// holds the fd helpers and the byte stream.
//
// Thread safety: a LocalLink belongs to its Socket and is used from the socket's thread
// only (the Reactor's loop thread). Buffers it returns may be released on any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace tessera::wire {

using LinkNonce = std::array<std::byte, 16>;

// One frame to send: `bytes`, kept alive by `owner` when not null (else copied).
struct LinkOutFrame {
  const Buffer* owner;
  std::span<const std::byte> bytes;
};

// Counters of one socket's links.
struct LinkStats {
  uint64_t links_up = 0;         // links that carry messages (both directions switched or switching)
  uint64_t refused = 0;          // set-ups that stayed on ZeroMQ (wrong nonce, other uid, connect failed)
  uint64_t dropped = 0;          // links closed by EOF, an error or a protocol violation
  uint64_t messages_sent = 0, messages_received = 0;
};

class LocalLink {
 public:
  // Takes ownership of `fd` (connected, non-blocking). `max_frame_bytes`: the longest
  // frame accepted; `max_queued_messages`: messages the output queue holds before Send
  // fails with ResourceExhausted (the send HWM).
  LocalLink(int fd, uint64_t max_frame_bytes, size_t max_queued_messages);
  ~LocalLink();  // closes the fd; queued output is dropped (its buffers released)
  LocalLink(const LocalLink&) = delete;
  LocalLink& operator=(const LocalLink&) = delete;

  int fd() const { return fd_; }

  // Queues one message and writes what the socket takes now. Frames below 1 KiB or
  // without an owner are copied; others are held (not copied) until written. The queue
  // is full once it holds `max_queued_messages` messages AND 2 MiB (the slack the
  // kernel's TCP buffers give a ZeroMQ pipe; a Unix socket buffers only ~200 KB).
  // `wait_ms` > 0: when the queue is full, waits for room (poll POLLOUT) that long,
  // reading the peer's messages meanwhile when `read_while_waiting` (PopMessage).
  // ResourceExhausted: the queue stayed full; Unavailable / Corruption: the link is
  // broken (the message was not queued either way).
  Status Send(std::span<const LinkOutFrame> frames, int wait_ms, bool read_while_waiting = false);
  // True while output is queued: the reactor polls POLLOUT and calls Flush.
  bool wants_write() const { return !out_.empty(); }
  // Writes queued output until the socket is full. Unavailable when the link broke.
  Status Flush();

  // Reads what the socket has (at most about `budget` bytes) and parses complete
  // messages into the ready queue. Unavailable on EOF or a read error, Corruption on a
  // frame over the limit or a message of too many frames; the link is then unusable.
  Status Read(size_t budget = 1u << 20);
  bool has_message() const { return !ready_.empty(); }
  // The oldest complete message's frames, in order.
  std::vector<Buffer> PopMessage();

  uint64_t messages_sent() const { return messages_sent_; }
  uint64_t messages_received() const { return messages_received_; }

 private:
  struct Chunk {
    std::vector<std::byte> copy;  // owned bytes (prefixes, small frames) ...
    Buffer owner;                 // ... or a held frame
    std::span<const std::byte> bytes;
    size_t done = 0;
    bool ends_message = false;
  };
  Status Fail(Status st);
  // A failed write: later sends fail with it, reading goes on (the peer's last messages).
  Status FailWrite(Status st);
  void DropOutput();
  bool ParseStaged(Status* error);
  bool full() const;

  const int fd_;
  const uint64_t max_frame_bytes_;
  const size_t max_queued_;
  Status broken_;        // set once the link failed; every later call returns it
  Status write_broken_;  // set once a write failed; Send and Flush return it

  std::deque<Chunk> out_;
  size_t queued_messages_ = 0;
  size_t queued_bytes_ = 0;

  // Input: bytes read but not yet parsed, the frame being filled, the message so far.
  std::vector<std::byte> stage_;
  size_t stage_begin_ = 0, stage_end_ = 0;
  Buffer body_;            // the frame being filled (its length known)
  size_t body_done_ = 0;
  bool body_more_ = false;
  bool in_body_ = false;
  std::vector<Buffer> partial_;
  std::deque<std::vector<Buffer>> ready_;
  uint64_t messages_sent_ = 0, messages_received_ = 0;
};

// Helpers for the set-up (wire/socket_link.cc). All fds are non-blocking and close-on-exec.
namespace link {

// A listening Unix stream socket in the abstract namespace (per network namespace, so
// test "hosts" never see each other's; no file to leave behind). *name: its address
// without the leading NUL.
Result<int> Listen(std::string* name);
// Connects to `name` and writes `nonce`. The connection is complete when this returns.
Result<int> ConnectAndSendNonce(const std::string& name, const LinkNonce& nonce);
// The peer's uid (SO_PEERCRED).
Result<uint32_t> PeerUid(int fd);
LinkNonce RandomNonce();

}  // namespace link
}  // namespace tessera::wire
