// Context and Socket: RAII over the libzmq C API, speaking Tessera messages.
//
// Every ZeroMQ call is translated to a Status at the call site (zmq_strerror in the
// message). Every blocking wait is bounded: Recv takes a Deadline, Send is bounded by
// SocketOptions::send_timeout_ms, and a socket's queues are bounded by its high-water
// marks, which is the transport's back-pressure (a full queue makes Send fail with
// ResourceExhausted instead of growing memory). A socket a Reactor owns never waits in
// Send at all (NeverWait below): its loop has other peers to serve.
//
// Thread safety: a Context may be shared by any number of threads. A Socket is NOT
// thread-safe (ZeroMQ sockets are not): use it from one thread at a time, and hand it
// to another thread only through a synchronising hand-off (a mutex, a queue, the
// Reactor's Post). The usual arrangement is one Reactor thread owning every socket.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "wire/codec.h"
#include "wire/curve.h"
#include "wire/local_link.h"
#include "wire/message.h"
#include "wire/session.h"
#include "wire/shm_channel.h"

namespace tessera::wire {

// Owns a zmq context. Sockets hold a shared_ptr to it, so it is terminated only after
// its last socket is closed (zmq_ctx_term would otherwise block forever).
class Context {
 public:
  // io_threads: ZeroMQ I/O threads (1 is enough below a few GB/s).
  static Result<std::shared_ptr<Context>> Create(int io_threads = 1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  void* raw() const { return ctx_; }

  // Turns on CURVE for every ROUTER and DEALER socket created from this context from now
  // on (ROUTERs: CURVE servers with the job's secret key; DEALERs: clients presenting
  // the job's keypair), and starts the ZAP handler that admits only holders of `keys`
  // (wire/curve.h). Call once, before creating any socket.
  Status EnableCurve(const CurveKeys& keys);
  // The job's keys when EnableCurve was called, else nullptr.
  const CurveKeys* curve() const { return curve_ ? &*curve_ : nullptr; }
  // Connections refused by the ZAP handler so far (0 without CURVE).
  uint64_t auth_refusals() const { return zap_ ? zap_->refusals() : 0; }

  // --auth=mac (wire/session.h): every ROUTER and DEALER created from now on opens an
  // authenticated session per connection and tags every message; the job MAC key is
  // derived from `keys`' secret. Logs the tag primitive and why. Call once, before
  // creating any socket; not together with EnableCurve.
  Status EnableMac(const CurveKeys& keys);
  // The MAC configuration when EnableMac was called, else nullptr.
  const MacAuthConfig* mac() const { return mac_ ? &*mac_ : nullptr; }

 private:
  explicit Context(void* ctx) : ctx_(ctx) {}
  void* const ctx_;
  // Written once by EnableCurve before any socket exists, read-only afterwards.
  std::optional<CurveKeys> curve_;
  std::unique_ptr<ZapHandler> zap_;
  std::optional<MacAuthConfig> mac_;  // written once by EnableMac, like curve_
};

enum class SocketType { kRouter, kDealer, kPair };

// Per-socket options.
struct SocketOptions {
  // Send and receive queue bounds, in messages (ZMQ_SNDHWM / ZMQ_RCVHWM). Bounds the
  // number of requests in flight per peer. Default: 1000.
  int send_hwm = 1000;
  int recv_hwm = 1000;
  // How long a blocking Send waits when the peer's queue is full before failing with
  // ResourceExhausted (ZMQ_SNDTIMEO). Default: 5000.
  int send_timeout_ms = 5000;
  // A socket a Reactor owns never waits (NeverWait): messages queued per peer in its
  // outbox behind a full send queue before Send fails at once. -1: send_hwm; 0: no bound
  // (for requests that each carry their own deadline). Default: -1.
  int outbox_hwm = -1;
  // Bounds on what the outbox keeps besides the count, both off at 0 (issue 17 follow-up:
  // a peer that never reads must not take unbounded memory). A message that waited longer
  // than outbox_max_age_ms is dropped, as a blocking send gave up after send_timeout_ms.
  // Past outbox_max_bytes over all peers (payloads, plus 512 bytes a message), the oldest
  // messages of the peer with the largest backlog are dropped (the new message, when
  // that peer is its own). Default: 0, 0.
  int outbox_max_age_ms = 0;
  uint64_t outbox_max_bytes = 0;
  // How long unsent messages are kept after Close (ZMQ_LINGER), so a final reply or
  // Shutdown still leaves, but a dead peer cannot hang process exit. Default: 1000.
  int linger_ms = 1000;
  // DEALER: routing id presented to ROUTER peers (ZMQ_ROUTING_ID); "" lets ZeroMQ pick.
  // Default: "".
  std::string routing_id;
  // Validation applied to every received message; also sets ZMQ_MAXMSGSIZE so a frame
  // over the limit is dropped by ZeroMQ before it is buffered. Default: see DecodeOptions.
  DecodeOptions decode;
  // Stamped on every outgoing message (jobId, senderRole, senderRank) when
  // stamp_sender is true, so call sites need not repeat them. Default: false.
  bool stamp_sender = false;
  uint64_t job_id = 0;
  Role role = Role::TOOL;
  int32_t rank = -1;
  // ROUTER: answer a malformed message with an error reply (echoing its requestId when
  // readable). Default: true.
  bool reply_to_malformed = true;
  // Same-host shared memory for payloads (ROUTER and DEALER; wire/shm_channel.h).
  // Default: follow --shm, --shm_arena_bytes, --shm_min_bytes.
  ShmOptions shm;
};

class Socket {
 public:
  // Creates the socket and applies `options`. ROUTER sockets get ZMQ_ROUTER_MANDATORY,
  // so sending to an unknown or gone peer fails (Unavailable) instead of vanishing.
  static Result<std::unique_ptr<Socket>> Create(std::shared_ptr<Context> ctx, SocketType type,
                                                SocketOptions options = {});
  ~Socket();  // closes the socket (pending sends linger up to linger_ms) and its links
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Binds and returns the endpoint actually bound: "tcp://127.0.0.1:*" picks a free
  // port and returns "tcp://127.0.0.1:43127".
  Result<std::string> Bind(const std::string& endpoint);
  // Bind on a TCP socket some other process already bound and listened on (ZMQ_USE_FD),
  // e.g. `tessera launch`, which binds port 0 and publishes the port before the child
  // that owns the ZeroMQ socket runs, so no other process can take the port in between.
  // `endpoint` must name the fd's address; the socket takes ownership of `fd`.
  Result<std::string> BindListeningFd(const std::string& endpoint, int fd);
  // Asynchronous: ZeroMQ connects (and reconnects) in the background; messages sent
  // before the connection exists wait in the queue (up to send_hwm).
  Status Connect(const std::string& endpoint);
  Status Disconnect(const std::string& endpoint);

  // Sends `msg` as [routing id] + header + payload frames. Payload frames are not
  // copied (see OutMessage::AddPayload). ROUTER: goes to `routing_id`, or to
  // msg.routing_id() when routing_id is empty.
  // Returns Unavailable when a ROUTER's peer is unknown or gone, ResourceExhausted when
  // the queue stayed full for send_timeout_ms, InvalidArgument for a ROUTER send with
  // no routing id. On failure nothing of the message was sent.
  // After NeverWait: a message that cannot go at once waits in the outbox (OK), and
  // ResourceExhausted, at once, means the outbox of that peer is full too.
  Status Send(OutMessage&& msg, std::string_view routing_id = {});
  // Sends `msg` only if it can go at once, never into the outbox: for messages that are
  // worthless late (a heartbeat that cannot go is a missed heartbeat). ResourceExhausted
  // when it cannot.
  Status SendIfRoom(OutMessage&& msg, std::string_view routing_id = {});

  // ---- Sends that never wait (issue 17; wire/socket_outbox.cc). A DEALER whose peer
  // died keeps queueing for it (ZeroMQ reconnects, and ZMQ_IMMEDIATE is off so that
  // messages sent before the first connection wait for it) until send_hwm messages wait;
  // then every blocking send waited send_timeout_ms, and a loop blocked there served
  // nobody: a worker's heartbeats and step reports to a killed coordinator stalled its
  // data replies 5 s per send. The Reactor calls NeverWait when it takes the socket:
  // from then on no send waits (ZMQ_SNDTIMEO 0, local-link sends without waiting, no
  // wait for an auth=mac WELCOME). A message that cannot go at once (ZeroMQ's queue to
  // the peer full, a full local link, a full auth=mac hold queue) waits in the socket's
  // outbox, per peer and in order, up to outbox_hwm messages; later messages to that peer
  // queue behind it; past the bound Send fails at once, naming the peer. outbox_max_age_ms
  // and outbox_max_bytes (SocketOptions) drop what a peer that never reads leaves there. The loop
  // flushes the outbox every turn. Loop thread only, like every socket call.
  void NeverWait();
  bool never_wait() const { return never_wait_; }
  // Messages waiting in the outbox, all peers.
  size_t outbox_size() const { return outboxed_; }
  // Bytes waiting in the outbox, all peers, as outbox_max_bytes counts them; messages
  // the outbox's bounds dropped.
  uint64_t outbox_bytes() const { return outbox_bytes_; }
  uint64_t outbox_dropped() const { return outbox_dropped_; }
  // Sends what waits, per peer in order, until a message cannot go at once. A message
  // that fails otherwise (a ROUTER peer gone) is dropped and logged.
  void FlushOutbox();
  // The peer is known gone (a DEALER's, declared dead by its owner): drops what waits for
  // it here and in ZeroMQ's queue (linger 0), so closing does not wait for it.
  void AbandonQueued();

  // Waits until `deadline` for one message and decodes it (ZeroMQ only: a socket with a
  // local link is read by its Reactor, wire/local_link.h). Returns TimedOut when none
  // arrived; the codec's Status for a malformed message (ROUTER: after answering the
  // sender with an error reply; a log line is written, rate-limited), so a receive loop
  // simply continues on error.
  Result<InMessage> Recv(Deadline deadline);
  // Recv that does not wait: TimedOut when nothing is queued (and ZMQ_FD armed, see
  // zmq_fd_armed). The Reactor drains a socket with it.
  Result<InMessage> TryRecv();

  // Memory for a payload of `bytes` that will be sent to `routing_id` (ROUTER; ignored
  // on a DEALER): a slot of the shared-memory arena of that peer when there is a channel
  // (then Send neither copies it nor hands it to ZeroMQ), else heap memory (16-byte aligned).
  // Uninitialised; fill it, then AddPayload it. Dropping it unsent frees the slot.
  // `progress` (not null): see ShmTransport::AllocatePayload (null unless the peer takes
  // streamed payloads and the Buffer is an arena slot).
  Buffer AllocatePayload(std::string_view routing_id, size_t bytes, uint64_t** progress = nullptr);

  // A fresh request id (per socket, starting at 1).
  uint64_t NextRequestId() { return ++last_request_id_; }

  SocketType type() const { return type_; }
  const SocketOptions& options() const { return options_; }
  // The zmq socket, for tools that poll it (zmq_poll). Not for sending or receiving: a
  // call the socket does not see would leave zmq_fd_armed() stale.
  void* raw() const { return sock_; }

  // ---- Reactor support (wire/reactor.h). ZMQ_FD, the fd of the socket's command
  // mailbox, is an edge: it turns readable when ZeroMQ queues a command for the socket
  // (a message arrived on an idle pipe, among others), and any call into the socket (a
  // send, a receive, a getsockopt) may consume that signal while messages stay queued.
  // The fd to poll (ZMQ_FD; fetched once, it never changes).
  Result<int> ZmqFd();
  // True when the last call into the socket found no message queued and left the mailbox
  // empty (a TryRecv that said TimedOut, or ZmqReadable() false): until the next call,
  // ZMQ_FD turns readable when a message arrives. Every other call clears it.
  bool zmq_fd_armed() const { return fd_armed_; }
  // ZMQ_EVENTS & ZMQ_POLLIN: a message can be received now. Arms the fd when false.
  Result<bool> ZmqReadable();

  // --auth=mac: messages refused by authentication (zero without it).
  AuthRefusals auth_refusals() const { return mac_ ? mac_->refusals() : AuthRefusals{}; }
  // --auth=mac: authenticated sessions open (ROUTER: peers; DEALER: 0 or 1).
  size_t auth_sessions() const { return mac_ ? mac_->num_sessions() : 0; }
  // Messages handed to the codec (Decode) so far: tests check refused ones never are.
  uint64_t decoded_messages() const { return decoded_messages_; }
  // Shared-memory counters (all zero on PAIR sockets), and the state of the channel
  // ("on", "pending", "off: <why>"; ROUTER: with the peer `routing_id`).
  ShmStats shm_stats() const { return shm_ ? shm_->stats() : ShmStats{}; }
  std::string shm_state(std::string_view routing_id = {}) const {
    return shm_ ? shm_->ChannelState(routing_id) : "off: not a ROUTER or DEALER";
  }
  // Whether this socket may ever use shared memory or a local link (its --shm mode
  // resolved to auto). Constant after Create.
  bool shm_enabled() const { return shm_ != nullptr && shm_->enabled(); }
  // The shared-memory transport (null on PAIR sockets), for tests.
  const ShmTransport* TEST_shm() const { return shm_.get(); }

  // ---- Same-host local link (wire/local_link.h, wire/socket_link.cc). A ROUTER or
  // DEALER moves a peer's messages to a Unix-domain socket once their shared-memory
  // channel is on, but only after EnableLocalLink: the link's fds are read by the
  // Reactor's loop, not by Recv, so only a socket a Reactor polls may use one. All of
  // these belong to the socket's (the loop's) thread.
  // The Reactor calls this when it takes the socket with a handler; --shm_link decides.
  void EnableLocalLink();
  // An fd the Reactor polls besides the ZeroMQ socket, with ZMQ_POLLIN / ZMQ_POLLOUT
  // (zmq_poll's flags; the Reactor maps them to poll(2)'s).
  struct PollFd {
    int fd;
    short events;
  };
  void AppendLinkPollFds(std::vector<PollFd>* out) const;
  // The poll said `fd` (one of AppendLinkPollFds's) is ready (ZMQ_POLLIN / ZMQ_POLLOUT /
  // ZMQ_POLLERR for a hang-up or error): flush, read, or drop it.
  void OnLinkEvents(int fd, short revents);
  // Messages (or a lost link) wait for TryRecv with nothing left to poll for.
  bool link_pending() const { return !link_ready_.empty() || (!link_lost_.ok() && !link_lost_reported_); }
  const LinkStats& link_stats() const { return link_stats_; }
  // "on", "tx" / "rx" (half switched), "pending", "off" (ROUTER: of `routing_id`).
  std::string link_state(std::string_view routing_id = {}) const;
  // ROUTER: the abstract name its link listener has ("" before the first offer). For tests.
  const std::string& TEST_link_name() const { return link_name_; }
  // DEALER: the link's fd (-1 without one), so a test can scribble on it.
  int TEST_link_fd() const;
  // ROUTER: later offers name `name` instead of the listener ("" : the listener) and
  // carry a nonce other than the one expected when `wrong_nonce`. For tests.
  void TEST_ForgeLinkOffers(std::string name, bool wrong_nonce) {
    test_offer_name_ = std::move(name);
    test_wrong_nonce_ = wrong_nonce;
  }

 private:
  Socket(std::shared_ptr<Context> ctx, void* sock, SocketType type, SocketOptions options);
  // Receives one message; the first frame's wait is bounded by ZMQ_RCVTIMEO (flags 0) or
  // absent (ZMQ_DONTWAIT). *got says whether anything arrived.
  Result<InMessage> ReceiveOne(int first_flags, bool* got);
  Status SendImpl(OutMessage&& msg, std::string_view routing_id, int flags);
  void ReportMalformed(const std::string& routing_id, const Buffer& header, const Status& st);
  // --auth=mac hooks (the end of socket.cc; the protocol is wire/session.h).
  Status MacSendHandshake(std::string_view routing_id, std::span<const std::byte> frame, int flags);
  // ROUTER, auth=mac: the header's sender is the identity the session was opened with.
  bool MacIdentityMatches(const std::string& routing_id, const Buffer& header, const std::string& peer);
  // DEALER with a full hold queue: receives until the WELCOME (which flushes the queue).
  Status MacAwaitWelcome(Deadline deadline);
  // True when the message is authenticated data (its trailer popped off `payloads`);
  // false when it was a handshake frame or was refused.
  bool MacAdmit(const std::string& routing_id, const Buffer& header, std::vector<Buffer>& payloads, size_t frames,
                bool truncated, const std::string& peer);

  // The outbox (NeverWait): by peer (ROUTER: routing id; DEALER: ""), in send order.
  bool never_wait_ = false;
  struct Outboxed {
    OutMessage msg;
    int64_t since_us;  // NowMicros() when it entered the outbox
    uint64_t bytes;    // what it counts for in outbox_max_bytes
  };
  struct PeerOutbox {
    std::deque<Outboxed> q;
    uint64_t bytes = 0;
  };
  std::map<std::string, PeerOutbox, std::less<>> outbox_;
  size_t outboxed_ = 0;
  uint64_t outbox_bytes_ = 0;
  uint64_t outbox_dropped_ = 0;
  int64_t last_drop_log_us_ = 0;
  uint64_t suppressed_drop_logs_ = 0;
  // Drops the front of `peer`'s outbox (a message that will not be sent), counted.
  void DropFront(PeerOutbox& peer);
  // Rate-limited: `n` messages (`bytes`) to `rid` dropped, and why.
  void LogDrops(std::string_view rid, uint64_t n, uint64_t bytes, const char* why);
  // Room for `bytes` more under outbox_max_bytes, taken from the largest backlog; false
  // when that backlog is `rid`'s own (the new message is dropped instead).
  bool MakeRoom(std::string_view rid, uint64_t bytes);
  // `msg` behind what waits for `rid`, or ResourceExhausted naming the peer.
  Status Enqueue(std::string_view rid, OutMessage&& msg);
  std::string PeerName(std::string_view rid) const;
  // auth=mac: the messages held for the WELCOME go first, then what the outbox holds.
  void SendHeld(std::deque<OutMessage> held);

  const std::shared_ptr<Context> ctx_;  // keeps the context alive while the socket lives
  void* const sock_;
  // Every call into sock_ goes through here, so zmq_fd_armed() knows of it.
  void* zsock() {
    fd_armed_ = false;
    return sock_;
  }
  bool fd_armed_ = false;
  // SendImpl's per-payload "went through shared memory" flags, kept between sends.
  std::vector<bool> in_shm_scratch_;
  const SocketType type_;
  const SocketOptions options_;
  // Same-host shared memory (wire/shm_channel.h); null on PAIR sockets.
  std::unique_ptr<ShmTransport> shm_;
  void HandleShmControl(const std::string& routing_id, const Buffer& frame);
  // A transport frame of our own (a shared-memory offer or answer), sealed under auth=mac.
  Status SendControlFrame(std::string_view routing_id, std::span<const std::byte> frame, int flags);
  // ReceiveOne consumed a frame that is not for the caller (a handshake, a refusal).
  bool control_seen_ = false;
  // auth=mac: a DEALER's shared-memory offer, sent once the WELCOME opened the session.
  std::vector<std::byte> held_shm_offer_;
  uint64_t last_request_id_ = 0;
  int rcvtimeo_ms_ = -1;  // the ZMQ_RCVTIMEO currently set (ZeroMQ's default: -1)
  // Rate limit for malformed-message log lines.
  int64_t last_log_us_ = 0;
  uint64_t suppressed_logs_ = 0;
  std::unique_ptr<MacLink> mac_;  // --auth=mac state; null otherwise
  uint64_t decoded_messages_ = 0;

  // The frames of one message, after ZeroMQ's routing id or from the link.
  Result<InMessage> ProcessFrames(const std::string& routing_id, Buffer header, std::vector<Buffer> payloads,
                                  size_t frames, bool truncated, const std::string& peer, bool* got);
  // One message: on the peer's link when our side switched, else ZeroMQ.
  Status SendFrames(std::string_view routing_id, std::span<const LinkOutFrame> frames, int flags);
  Status ZmqSendFrames(std::string_view routing_id, std::span<const LinkOutFrame> frames, int flags);
  // True when it produced *out (a link message, a control frame consumed, a lost link).
  bool LinkReceiveOne(Result<InMessage>* out, bool* got);
  void HandleLinkControl(const std::string& routing_id, std::span<const std::byte> frame);
  void MaybeOfferLink(const std::string& routing_id);
  void AcceptLinks();
  void DropLink(const std::string& routing_id, const Status& why);
  // A send or flush on the link to `routing_id` failed with `why`: see LinkPeer::tx_failed.
  void LinkWriteFailed(const std::string& routing_id, const Status& why);
  void CloseLinks();
  // Link messages read ahead of the handler, at most: the receive HWM (at least 64).
  size_t LinkReadyBound() const { return static_cast<size_t>(std::max(options_.recv_hwm, 64)); }

  // Local-link state; the socket's thread only.
  struct LinkPeer {
    LinkNonce nonce{};               // ROUTER: what the peer must write first
    std::unique_ptr<LocalLink> link;  // connected / accepted
    bool tx = false;                 // our messages to the peer go on the link
    bool rx = false;                 // we read the peer's link
    // A write failed (the peer closed its end): our later messages go to ZeroMQ, but the
    // link stays until what the peer wrote before closing has been read (it may be its
    // last message, e.g. a worker's SHUTDOWN), once rx allows reading it.
    bool tx_failed = false;
  };
  struct PendingAccept {
    int fd;
    int64_t since_us;
  };
  bool link_allowed_ = false;
  std::string endpoint_;     // DEALER: the endpoint last connected, for log lines
  int link_listen_fd_ = -1;  // ROUTER, from the first offer on
  std::string link_name_;
  std::map<std::string, LinkPeer, std::less<>> link_peers_;  // ROUTER: by routing id; DEALER: ""
  std::vector<PendingAccept> link_accepts_;                  // accepted, nonce not read yet
  std::deque<std::pair<std::string, std::vector<Buffer>>> link_ready_;
  Status link_lost_;  // DEALER: the link broke; TryRecv reports it once
  bool link_lost_reported_ = false;
  LinkStats link_stats_;
  std::string test_offer_name_;
  bool test_wrong_nonce_ = false;
};

// Sends `request` on a DEALER socket and waits until `deadline` for the reply with the
// same requestId, discarding stale replies (ids of earlier, abandoned requests).
// Assigns socket.NextRequestId() when the request's id is 0.
// Returns the reply; an error reply becomes its Status (StatusFromError); TimedOut when
// no matching reply came. For blocking clients and tools; loops use the Reactor.
Result<InMessage> Call(Socket& socket, OutMessage&& request, Deadline deadline);

// Test hook: number of received ZeroMQ frames currently kept alive by InMessages or
// Buffers (zero-copy receive). Not for production logic.
int64_t TEST_LiveReceivedFrames();

}  // namespace tessera::wire
