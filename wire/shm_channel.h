// The same-host shared-memory path of a Socket (docs/wire_format.md, "Same-host shared
// memory").
//
// When a DEALER and a ROUTER run on the same host (same kernel boot, UTS host name,
// network namespace and uid: HostIdentity()), payloads of at least --shm_min_bytes bytes travel through
// shared-memory arenas (wire/shm_arena.h) and ZeroMQ carries the header plus one small
// descriptor frame. Set-up is a handshake of transport frames the Socket does by itself
// (callers see nothing): the DEALER offers its arena after Connect, the ROUTER maps it
// and answers with its own arena for the replies (ACCEPT), the DEALER maps that and
// confirms (CONFIRM). Each direction is used only once its receiver has mapped the
// arena. Any failure (another host, fd not openable, another uid, --shm=off on either
// side) leaves that connection on TCP, with one log line on the DEALER side that says
// why; a payload that finds no free slot (or is bigger than the arena) goes over TCP
// too and is counted.
//
// Transport frames start with 0xFFFFFFFF, which no Cap'n Proto header can (it would
// announce 2^32 segments), so they never reach the codec.
//
// Thread safety: a ShmTransport belongs to its Socket and is used from the socket's
// thread only. Buffers it returns may be released on any thread (wire/shm_arena.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "wire/message.h"
#include "wire/shm_arena.h"
#include "wire/shm_frames.h"
#include "wire/shm_stream.h"

namespace tessera::wire {

enum class ShmMode : uint8_t {
  kFlag = 0,  // follow --shm
  kAuto = 1,  // shared memory with peers on this host, TCP otherwise
  kOff = 2,   // TCP only; offers from peers are refused
};

// Per-socket shared-memory options (SocketOptions::shm).
struct ShmOptions {
  ShmMode mode = ShmMode::kFlag;
  // Size of each arena this socket creates (one per peer connection), sparse: only
  // touched pages cost memory. 0: --shm_arena_bytes (default 256 MiB).
  uint64_t arena_bytes = 0;
  // Payloads smaller than this go over TCP (cheaper than a slot). 0: --shm_min_bytes
  // (default 64 KiB).
  uint64_t min_bytes = 0;
  // "" : this host's HostIdentity(). Tests pose as another host with it.
  std::string host_identity;
  // Peers may stream payloads to this socket (wire/shm_stream.h): its application waits
  // on InMessage::payload_stream before reading them. The parameter server's data socket
  // (pushes) and the worker's sockets to servers (replies) do. Default: false.
  bool accept_streamed = false;
};

// A payload Place reserved but has not copied yet: the socket copies it (ShmStreamCopy)
// after the message is sent.
struct ShmPendingCopy {
  std::byte* dst;
  std::span<const std::byte> src;
  uint64_t* progress;
};

// Counters of one socket. "tcp" counts payload frames sent or received over ZeroMQ.
struct ShmStats {
  uint64_t shm_payloads_sent = 0, shm_bytes_sent = 0;
  uint64_t tcp_payloads_sent = 0, tcp_bytes_sent = 0;
  // Payloads of at least min_bytes to a peer with a channel that went over TCP anyway
  // (no free slot, bigger than the arena).
  uint64_t fallback_payloads = 0;
  // Of shm_payloads_sent: built in place (AllocatePayload), so not copied at all.
  uint64_t in_place_payloads_sent = 0;
  uint64_t shm_payloads_received = 0, shm_bytes_received = 0;
  uint64_t tcp_payloads_received = 0, tcp_bytes_received = 0;
  uint64_t refused_descriptors = 0;  // bad descriptors refused (the message was dropped)
  uint64_t streamed_payloads_sent = 0, streamed_payloads_received = 0;  // of the shm ones
};

// "<boot_id>|<UTS host name>|net:[<netns inode>]|uid=<euid>": equal only for processes
// that can share an arena and mean to talk locally. Network-namespace "hosts" (the test
// clusters, the fault-injection worker behind a veth) differ, host name or not.
const std::string& HostIdentity();


class ShmTransport {
 public:
  ShmTransport(bool router, const ShmOptions& options);
  ~ShmTransport();

  bool enabled() const { return enabled_; }

  // DEALER, after zmq_connect: the OFFER frame to send first; nullopt when shared
  // memory is off for this socket (disabled, second endpoint, arena creation failed).
  std::optional<std::vector<std::byte>> OnConnect(const std::string& endpoint);

  // Sending to `peer` (the routing id; "" on a DEALER): copies each payload that
  // qualifies into the arena and sets (*in_shm)[i]. Returns the DATA frame to send
  // before the header, or an empty vector when every payload goes over TCP.
  // `streamed` (not null, and the peer said STREAM_OK): the payloads to copy are only
  // reserved and listed there, and the frame is a STREAMED_DATA frame; the caller sends
  // the message and then copies them.
  std::vector<std::byte> Place(std::string_view peer, const std::vector<OutMessage::Payload>& payloads,
                               std::vector<bool>* in_shm, std::vector<ShmPendingCopy>* streamed = nullptr);
  // True once after a Place that refused its message: a payload the application streams
  // (AllocatePayload with `progress`) could not go streamed. The socket fails the send.
  bool TakeStreamRefusal() { return std::exchange(stream_refused_, false); }
  // A Buffer of `bytes` inside the arena of the channel to `peer`, for a payload built
  // in place and sent to that peer: Place then sends it without copying. An empty
  // Buffer when there is no usable channel, `bytes` < min_bytes, or no free slot. If
  // the Buffer is dropped unsent, its slot is freed.
  // `progress` (not null): set to the slot's progress word when the peer takes streamed
  // payloads, else to null. The caller then may send the message (marked streamable)
  // before the bytes are written, and must publish them through *progress
  // (ShmStreamPublish) up to the length, or kShmStreamAbandoned.
  Buffer AllocatePayload(std::string_view peer, uint64_t bytes, uint64_t** progress = nullptr);
  // The message carrying `data_frame` was not sent: frees its slots.
  void Abandon(std::string_view peer, std::span<const std::byte> data_frame);

  // Receiving a transport frame that came alone (OFFER, ACCEPT, CONFIRM, REFUSE). Sets
  // *reply to a frame to send back to `peer` (empty: none). Errors are for the log.
  Status OnControl(const std::string& peer, std::span<const std::byte> frame, std::vector<std::byte>* reply);
  // Receiving a DATA frame followed by a header and `tcp_frames`: the payloads in
  // order, shared-memory ones as zero-copy Buffers. Corruption when the descriptor is
  // malformed, names slots outside the arena or not in flight, or there is no channel.
  // A STREAMED_DATA frame (accepted only from a peer told STREAM_OK) also fills
  // *streams, one entry per payload (null for the complete ones).
  Result<std::vector<Buffer>> Resolve(const std::string& peer, std::span<const std::byte> frame,
                                      std::vector<Buffer> tcp_frames,
                                      std::vector<std::shared_ptr<const ShmStream>>* streams);
  // A message without a DATA frame: counts its payloads as received over TCP.
  void CountTcpReceived(const std::vector<Buffer>& payloads);

  const ShmStats& stats() const { return stats_; }
  // The nonce DATA frames to `peer` carry (0 without a channel). For tests that forge
  // descriptors.
  uint64_t TEST_tx_nonce(std::string_view peer = {}) const;
  // Whether streamable messages to `peer` go streamed (sending) / may come streamed
  // from it (receiving).
  bool streams(std::string_view peer = {}) const;
  bool receives_streams(std::string_view peer = {}) const;
  // "on", "pending", "off: <why>", "replies over TCP: <why>"; for a ROUTER, of `peer`.
  std::string ChannelState(std::string_view peer = {}) const;

 private:
  // A slot handed out by AllocatePayload. `sent` is set by Place on this thread; the
  // Buffer's release (any thread) frees the slot when it was never sent.
  struct Reservation {
    std::shared_ptr<ShmTxArena> arena;
    ShmSlotRef ref;
    std::atomic<bool> sent{false};
    bool app_streams = false;  // the application publishes progress (AllocatePayload)
  };
  struct Channel {
    std::shared_ptr<ShmTxArena> tx;  // ours; the peer reads it
    uint64_t tx_nonce = 0;
    bool tx_ready = false;             // the peer mapped tx
    std::shared_ptr<ShmPeerArena> rx;  // the peer's; we read it
    uint64_t rx_nonce = 0;
    bool tx_streams = false;  // DEALER: the peer said STREAM_OK; ROUTER: its CONFIRM takes streams
    bool rx_streams = false;  // ROUTER: we said STREAM_OK; DEALER: our CONFIRM took streams
    std::string off_reason;  // "" while usable or pending
  };
  Channel* Find(std::string_view peer);
  void TurnOff(Channel& c, const std::string& why);
  Status OnOffer(const std::string& peer, std::span<const std::byte> body, std::vector<std::byte>* reply);

  const bool router_;
  const bool enabled_;  // mode resolved to auto
  const uint64_t arena_bytes_;
  const uint64_t min_bytes_;
  const std::string host_;
  const bool accept_streamed_;
  std::string endpoint_;  // DEALER: the connected endpoint, for log lines
  int connects_ = 0;
  Channel dealer_;                          // DEALER's only channel
  std::map<std::string, Channel, std::less<>> peers_;  // ROUTER: by routing id
  ShmStats stats_;
  bool stream_refused_ = false;
  // Outstanding AllocatePayload slots by address (expired entries are pruned lazily).
  std::map<const std::byte*, std::weak_ptr<Reservation>> reserved_;
};

}  // namespace tessera::wire
