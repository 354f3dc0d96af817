#include "wire/socket.h"

#include <glog/logging.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "wire/alloc.h"

namespace tessera::wire {

namespace {

// Frames below this size are copied into ZeroMQ's own message: cheaper than the
// reference count and the free callback that zero-copy costs.
constexpr size_t kZeroCopyMinBytes = 1024;

std::atomic<int64_t> g_live_received_frames{0};

Status ZmqError(const char* what, int err) {
  std::string m = std::string(what) + ": " + zmq_strerror(err);
  switch (err) {
    case EAGAIN:
      return Status::ResourceExhausted(m);
    case EHOSTUNREACH:
      return Status::Unavailable(m);
    case ETERM:
      return Status::Aborted(m);
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENOCOMPATPROTO:
      return Status::InvalidArgument(m);
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case ENODEV:
      return Status::Unavailable(m);
    default:
      return Status::IOError(m);
  }
}

Status SetOpt(void* sock, int option, const void* value, size_t len, const char* name) {
  if (zmq_setsockopt(sock, option, value, len) != 0) return ZmqError(name, zmq_errno());
  return Status::OK();
}
Status SetInt(void* sock, int option, int value, const char* name) {
  return SetOpt(sock, option, &value, sizeof(value), name);
}

// ZeroMQ's free callback for zero-copy frames: drops the transport's reference (a
// Buffer::Retain token, not a Buffer allocated per frame). Runs on a ZeroMQ I/O thread
// (or on ours when a send fails); Buffer's count is atomic.
void ReleaseBuffer(void* /*data*/, void* hint) { Buffer::ReleaseRetained(hint); }

// A received frame kept as it is: its zmq_msg_t and the Buffer's count in one block. The
// message is moved in first (a base before Owner): a small frame's bytes move with it.
struct ReceivedMsg {
  explicit ReceivedMsg(zmq_msg_t* from) { zmq_msg_init(&msg), zmq_msg_move(&msg, from); }
  zmq_msg_t msg;
};
struct HeldFrame final : ReceivedMsg, Buffer::Owner {
  explicit HeldFrame(zmq_msg_t* from)
      : ReceivedMsg(from), Owner(zmq_msg_data(&msg), zmq_msg_size(&msg), Device::kCPU, &Destroy) {}
  static void Destroy(Buffer::Owner* o) {
    zmq_msg_close(&static_cast<HeldFrame*>(o)->msg);
    delete static_cast<HeldFrame*>(o);
    g_live_received_frames.fetch_sub(1, std::memory_order_relaxed);
  }
};

// A received frame as a Buffer; `msg` is left empty (closed or moved from). An 8-byte
// aligned frame is kept, not copied, and closed when the last reference dies. A misaligned
// one (ZeroMQ packs frames that fit its receive batch at any offset) is copied now into
// FrameBuffer's memory (16-byte aligned: enough for any payload's elements), which the
// codec takes as is (issue 17: the codec copied it again, with two more allocations).
Buffer TakeFrame(zmq_msg_t* msg) {
  const size_t size = zmq_msg_size(msg);
  const void* data = zmq_msg_data(msg);
  if (size > 0 && reinterpret_cast<uintptr_t>(data) % 8 != 0) {
    Buffer copy = FrameBuffer(size);
    std::memcpy(copy.data(), data, size);
    zmq_msg_close(msg);
    return copy;
  }
  auto* held = new HeldFrame(msg);
  zmq_msg_close(msg);
  g_live_received_frames.fetch_add(1, std::memory_order_relaxed);
  return Buffer::Adopt(held);
}

int ZmqType(SocketType t) {
  switch (t) {
    case SocketType::kRouter:
      return ZMQ_ROUTER;
    case SocketType::kDealer:
      return ZMQ_DEALER;
    case SocketType::kPair:
      return ZMQ_PAIR;
  }
  return ZMQ_PAIR;
}

// Sends one frame; zero copy for large payloads.
Status SendFrame(void* sock, const Buffer* owner, std::span<const std::byte> bytes, int flags) {
  zmq_msg_t m;
  if (owner != nullptr && bytes.size() >= kZeroCopyMinBytes) {
    void* hold = owner->Retain();
    // ZeroMQ never writes through this pointer; the cast only satisfies the C API.
    void* data = const_cast<std::byte*>(bytes.data());
    if (zmq_msg_init_data(&m, data, bytes.size(), &ReleaseBuffer, hold) != 0) {
      Buffer::ReleaseRetained(hold);
      return ZmqError("zmq_msg_init_data", zmq_errno());
    }
  } else {
    if (zmq_msg_init_size(&m, bytes.size()) != 0) return ZmqError("zmq_msg_init_size", zmq_errno());
    if (!bytes.empty()) memcpy(zmq_msg_data(&m), bytes.data(), bytes.size());
  }
  if (zmq_msg_send(&m, sock, flags) < 0) {
    const int err = zmq_errno();
    zmq_msg_close(&m);  // still ours after a failed send: runs ReleaseBuffer
    return ZmqError("zmq_msg_send", err);
  }
  return Status::OK();
}

}  // namespace

int64_t TEST_LiveReceivedFrames() { return g_live_received_frames.load(); }

// ------------------------------------------------------------------------------ Context

Result<std::shared_ptr<Context>> Context::Create(int io_threads) {
  void* ctx = zmq_ctx_new();
  if (ctx == nullptr) return ZmqError("zmq_ctx_new", zmq_errno());
  if (zmq_ctx_set(ctx, ZMQ_IO_THREADS, io_threads) != 0) {
    Status st = ZmqError("zmq_ctx_set(ZMQ_IO_THREADS)", zmq_errno());
    zmq_ctx_term(ctx);
    return st;
  }
  return std::shared_ptr<Context>(new Context(ctx));
}

Status Context::EnableCurve(const CurveKeys& keys) {
  if (mac_) return Status::FailedPrecondition("--auth=mac is already enabled on this context");
  if (curve_) return Status::FailedPrecondition("CURVE is already enabled on this context");
  TESSERA_ASSIGN_OR_RETURN(zap_, ZapHandler::Start(ctx_, keys.public_z85));
  curve_ = keys;
  return Status::OK();
}

Status Context::EnableMac(const CurveKeys& keys) {
  if (mac_ || curve_) return Status::FailedPrecondition("authentication is already enabled on this context");
  std::array<uint8_t, 32> secret{};
  if (keys.secret_z85.size() != 40 || zmq_z85_decode(secret.data(), keys.secret_z85.c_str()) == nullptr) {
    return Status::InvalidArgument("malformed job secret key");
  }
  MacAuthConfig c;
  c.job_key = DeriveJobMacKey(secret);
  std::string why;
  TESSERA_ASSIGN_OR_RETURN(c.primitive, PreferredMacPrimitive(&why));
  // The self-test catches an OpenSSL without the primitive before any peer does.
  TESSERA_ASSIGN_OR_RETURN(auto probe, FrameMac::Create(c.primitive, c.job_key));
  LOG(INFO) << "mac: " << MacPrimitiveName(c.primitive) << " (" << why << ")";
  mac_ = c;
  return Status::OK();
}

Context::~Context() {
  // The ZAP handler's socket belongs to this context too: close it first, or
  // zmq_ctx_term would wait for it forever.
  zap_.reset();
  // Every socket is closed by now (each holds a reference to us), so this returns once
  // their lingering messages are flushed or linger_ms has passed.
  while (zmq_ctx_term(ctx_) != 0 && zmq_errno() == EINTR) {
  }
}

// ------------------------------------------------------------------------------- Socket

Result<std::unique_ptr<Socket>> Socket::Create(std::shared_ptr<Context> ctx, SocketType type,
                                               SocketOptions options) {
  void* sock = zmq_socket(ctx->raw(), ZmqType(type));
  if (sock == nullptr) return ZmqError("zmq_socket", zmq_errno());
  std::unique_ptr<Socket> s(new Socket(std::move(ctx), sock, type, std::move(options)));
  const SocketOptions& o = s->options_;
  TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_SNDHWM, o.send_hwm, "ZMQ_SNDHWM"));
  TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_RCVHWM, o.recv_hwm, "ZMQ_RCVHWM"));
  TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_SNDTIMEO, o.send_timeout_ms, "ZMQ_SNDTIMEO"));
  TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_LINGER, o.linger_ms, "ZMQ_LINGER"));
  // A frame over the message limit is dropped by ZeroMQ (which disconnects the peer)
  // before it is buffered: a peer cannot make us allocate more than the limit.
  const int64_t max_frame = static_cast<int64_t>(MaxMessageBytes(o.decode));
  TESSERA_RETURN_IF_ERROR(
      SetOpt(sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof(max_frame), "ZMQ_MAXMSGSIZE"));
  if (type == SocketType::kRouter) {
    TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY"));
  }
  if (const CurveKeys* k = s->ctx_->curve(); k != nullptr && type != SocketType::kPair) {
    // Z85 keys are passed with their terminating NUL (41 bytes), as zmq_setsockopt asks.
    if (type == SocketType::kRouter) {
      TESSERA_RETURN_IF_ERROR(SetInt(sock, ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER"));
      TESSERA_RETURN_IF_ERROR(SetOpt(sock, ZMQ_CURVE_SECRETKEY, k->secret_z85.c_str(), 41, "ZMQ_CURVE_SECRETKEY"));
      static constexpr char kDomain[] = "tessera";
      TESSERA_RETURN_IF_ERROR(SetOpt(sock, ZMQ_ZAP_DOMAIN, kDomain, sizeof(kDomain) - 1, "ZMQ_ZAP_DOMAIN"));
    } else {
      TESSERA_RETURN_IF_ERROR(SetOpt(sock, ZMQ_CURVE_SERVERKEY, k->public_z85.c_str(), 41, "ZMQ_CURVE_SERVERKEY"));
      TESSERA_RETURN_IF_ERROR(SetOpt(sock, ZMQ_CURVE_PUBLICKEY, k->public_z85.c_str(), 41, "ZMQ_CURVE_PUBLICKEY"));
      TESSERA_RETURN_IF_ERROR(SetOpt(sock, ZMQ_CURVE_SECRETKEY, k->secret_z85.c_str(), 41, "ZMQ_CURVE_SECRETKEY"));
    }
  }
  if (const MacAuthConfig* m = s->ctx_->mac(); m != nullptr && type != SocketType::kPair) {
    const uint64_t job = o.decode.expected_job_id != 0 ? o.decode.expected_job_id : o.job_id;
    s->mac_ = std::make_unique<MacLink>(*m, type == SocketType::kRouter,
                                        PeerIdentity{o.job_id, static_cast<int32_t>(o.role), o.rank}, job,
                                        static_cast<size_t>(std::max(o.send_hwm, 1)));
  }
  if (!o.routing_id.empty()) {
    TESSERA_RETURN_IF_ERROR(
        SetOpt(sock, ZMQ_ROUTING_ID, o.routing_id.data(), o.routing_id.size(), "ZMQ_ROUTING_ID"));
  }
  if (type != SocketType::kPair) s->shm_ = std::make_unique<ShmTransport>(type == SocketType::kRouter, o.shm);
  return s;
}

Socket::Socket(std::shared_ptr<Context> ctx, void* sock, SocketType type, SocketOptions options)
    : ctx_(std::move(ctx)), sock_(sock), type_(type), options_(std::move(options)) {}

Socket::~Socket() {
  CloseLinks();
  zmq_close(sock_);
}

Result<std::string> Socket::Bind(const std::string& endpoint) {
  if (zmq_bind(zsock(), endpoint.c_str()) != 0) {
    return ZmqError(("bind " + endpoint).c_str(), zmq_errno());
  }
  char buf[256];
  size_t len = sizeof(buf);
  if (zmq_getsockopt(zsock(), ZMQ_LAST_ENDPOINT, buf, &len) != 0) {
    return ZmqError("ZMQ_LAST_ENDPOINT", zmq_errno());
  }
  return std::string(buf, len > 0 && buf[len - 1] == '\0' ? len - 1 : len);
}

Result<std::string> Socket::BindListeningFd(const std::string& endpoint, int fd) {
  if (zmq_setsockopt(zsock(), ZMQ_USE_FD, &fd, sizeof(fd)) != 0) return ZmqError("ZMQ_USE_FD", zmq_errno());
  auto bound = Bind(endpoint);
  // Later binds of this socket must create their own listening sockets again.
  const int none = -1;
  if (zmq_setsockopt(zsock(), ZMQ_USE_FD, &none, sizeof(none)) != 0 && bound.ok()) {
    return ZmqError("ZMQ_USE_FD", zmq_errno());
  }
  return bound;
}

Status Socket::Connect(const std::string& endpoint) {
  if (zmq_connect(zsock(), endpoint.c_str()) != 0) {
    return ZmqError(("connect " + endpoint).c_str(), zmq_errno());
  }
  // A second endpoint: ZeroMQ round-robins between them, a link would reach only the
  // first. (Its shared-memory channel turns off too, so no new link is offered.)
  if (type_ == SocketType::kDealer && !endpoint_.empty()) CloseLinks();
  endpoint_ = endpoint;
  if (mac_ && type_ == SocketType::kDealer) {  // auth=mac: HELLO goes first (wire/session.h)
    mac_->set_endpoint(endpoint);
    TESSERA_RETURN_IF_ERROR(MacSendHandshake({}, mac_->StartHandshake(), 0));
  }
  // Shared memory: the offer is the first message on the new connection (it waits in
  // the queue until the connection is up, like any other). Under auth=mac it is sent,
  // sealed, once the WELCOME has opened the session (MacAdmit).
  if (shm_) {
    if (auto offer = shm_->OnConnect(endpoint)) {
      if (mac_ && !mac_->established()) {
        held_shm_offer_ = std::move(*offer);
      } else {
        Status st = SendControlFrame({}, *offer, ZMQ_DONTWAIT);
        if (!st.ok()) LOG(WARNING) << "shared memory offer to " << endpoint << " not sent: " << st.ToString();
      }
    }
  }
  return Status::OK();
}

Status Socket::Disconnect(const std::string& endpoint) {
  // A DEALER's link is to the one server it connected to: it goes with the connection,
  // and so does what waits for it (dropping it releases zero-copy frames, which a
  // worker's FailAll counts on).
  if (type_ == SocketType::kDealer) {
    CloseLinks();
    outbox_.clear();
    outboxed_ = 0;
    outbox_bytes_ = 0;
  }
  if (zmq_disconnect(zsock(), endpoint.c_str()) != 0) {
    return ZmqError(("disconnect " + endpoint).c_str(), zmq_errno());
  }
  return Status::OK();
}


Status Socket::SendImpl(OutMessage&& msg, std::string_view routing_id, int flags) {
  if (options_.stamp_sender) {
    if (msg.header().getJobId() == 0) msg.SetJobId(options_.job_id);
    msg.SetSender(options_.role, options_.rank);
  }
  const std::string_view rid = routing_id.empty() ? std::string_view(msg.routing_id()) : routing_id;
  if (type_ == SocketType::kRouter && rid.empty()) {
    return Status::InvalidArgument("send of " + OpName(msg.op()) +
                                   " on a ROUTER needs a routing id");
  }
  if (mac_ && type_ == SocketType::kDealer && !mac_->established()) {  // auth=mac: wait for WELCOME
    if (mac_->HandshakeStale()) TESSERA_RETURN_IF_ERROR(MacSendHandshake({}, mac_->StartHandshake(), 0));
    // A full hold queue is back-pressure like a full send queue: a blocking send waits
    // (up to send_timeout_ms) for the WELCOME, which flushes the queue; then this message goes.
    if (!mac_->held_full() || (flags & ZMQ_DONTWAIT) != 0) return mac_->Hold(std::move(msg));
    TESSERA_RETURN_IF_ERROR(MacAwaitWelcome(Deadline::FromMillis(options_.send_timeout_ms)));
  }
  const std::span<const std::byte> header = msg.EncodedHeader();  // in msg: no copy
  const auto& payloads = msg.payloads();
  // Same-host shared memory (wire/shm_channel.h): payloads copied into the peer's arena
  // are named by one DATA frame before the header and skipped below.
  const std::string_view peer = type_ == SocketType::kRouter ? rid : std::string_view();
  std::vector<bool>& in_shm = in_shm_scratch_;  // its capacity is kept: no allocation per send
  if (!shm_) in_shm.assign(payloads.size(), false);  // else Place assigns it
  // Streamed payloads are copied after the message is on its way (wire/shm_stream.h).
  std::vector<ShmPendingCopy> copies;
  const std::vector<std::byte> shm_frame =
      shm_ ? shm_->Place(peer, payloads, &in_shm, msg.streamable() ? &copies : nullptr) : std::vector<std::byte>();
  if (shm_ && shm_->TakeStreamRefusal()) {
    return Status::Unavailable("sending " + OpName(msg.op()) + ": its payload is written after the send, and the "
                               "shared-memory channel to the peer is gone");
  }
  Status st = [&]() -> Status {
    std::array<std::byte, kTrailerBytes> trailer;
    if (mac_) {  // auth=mac: the trailer's tag covers every frame below, the shm one included
      std::array<std::span<const std::byte>, kMaxPayloadFrames + 2> covered;  // no allocation per send
      size_t k = 0;
      if (!shm_frame.empty()) covered[k++] = shm_frame;
      covered[k++] = header;
      for (size_t i = 0; i < payloads.size(); ++i) {
        if (!in_shm[i]) covered[k++] = payloads[i].bytes;
      }
      TESSERA_ASSIGN_OR_RETURN(trailer, mac_->Seal(rid, std::span<const std::span<const std::byte>>(covered.data(), k)));
    }
    // The frames ZeroMQ (or the local link, wire/local_link.h) carries, in order; on the
    // stack, as a message has at most kMaxPayloadFrames payloads (AddPayload).
    std::array<LinkOutFrame, kMaxPayloadFrames + 3> frames;
    size_t n = 0;
    if (!shm_frame.empty()) frames[n++] = {nullptr, shm_frame};
    frames[n++] = {nullptr, header};
    for (size_t i = 0; i < payloads.size(); ++i) {
      if (!in_shm[i]) frames[n++] = {&payloads[i].owner, payloads[i].bytes};
    }
    if (mac_) frames[n++] = {nullptr, trailer};
    TESSERA_RETURN_IF_ERROR_CTX(SendFrames(rid, std::span<const LinkOutFrame>(frames.data(), n), flags),
                                "sending " + OpName(msg.op()));
    return Status::OK();
  }();
  if (!st.ok() && !shm_frame.empty()) shm_->Abandon(peer, shm_frame);
  if (st.ok()) {
    for (const ShmPendingCopy& c : copies) ShmStreamCopy(c.dst, c.src, c.progress);
  }
  return st;
}

Buffer Socket::AllocatePayload(std::string_view routing_id, size_t bytes, uint64_t** progress) {
  if (progress != nullptr) *progress = nullptr;
  if (shm_) {
    Buffer b =
        shm_->AllocatePayload(type_ == SocketType::kRouter ? routing_id : std::string_view(), bytes, progress);
    if (!b.empty()) return b;
  }
  return bytes > 0 ? FrameBuffer(bytes) : Buffer::Allocate(0);
}

// "none queued" (here and in socket_recv.cc) fits std::string's inline buffer: the Reactor
// drains each readable socket until TryRecv says so, several times per request, and the
// longer "no message queued" cost an allocation and a free each time.
Result<InMessage> Socket::TryRecv() {
  for (;;) {
    bool got = false;
    control_seen_ = false;
    // Messages of the local link first (wire/local_link.h): a peer that switched sends
    // nothing more on ZeroMQ, so per-peer order holds either way.
    Result<InMessage> r = Status::TimedOut("none queued");
    if (!LinkReceiveOne(&r, &got)) r = ReceiveOne(ZMQ_DONTWAIT, &got);
    // A handshake frame (auth=mac, shared memory) or a refused message was consumed:
    // look for a real message behind it.
    if (!control_seen_) return r;
  }
}

Result<int> Socket::ZmqFd() {
  int fd = -1;
  size_t len = sizeof(fd);
  if (zmq_getsockopt(zsock(), ZMQ_FD, &fd, &len) != 0) return ZmqError("ZMQ_FD", zmq_errno());
  return fd;
}

Result<bool> Socket::ZmqReadable() {
  int events = 0;
  size_t len = sizeof(events);
  if (zmq_getsockopt(zsock(), ZMQ_EVENTS, &events, &len) != 0) return ZmqError("ZMQ_EVENTS", zmq_errno());
  fd_armed_ = (events & ZMQ_POLLIN) == 0;
  return !fd_armed_;
}

Result<InMessage> Socket::Recv(Deadline deadline) {
  for (;;) {
    // A blocking receive bounded by ZMQ_RCVTIMEO waits on the socket's own mailbox: one
    // call per message, cheaper than a zmq_poll before every receive.
    int wait = static_cast<int>(std::min<int64_t>(deadline.RemainingMillis(), INT32_MAX));
    // auth=mac: wake up to re-send a HELLO that went unanswered (ReceiveOne does).
    if (mac_ && mac_->pending()) wait = std::min(wait, 1000);
    if (wait != rcvtimeo_ms_) {
      TESSERA_RETURN_IF_ERROR(SetInt(zsock(), ZMQ_RCVTIMEO, wait, "ZMQ_RCVTIMEO"));
      rcvtimeo_ms_ = wait;
    }
    bool got = false;
    control_seen_ = false;
    Result<InMessage> r = Status::TimedOut("none queued");
    // Link messages already read (the link itself is read by the Reactor only).
    if (LinkReceiveOne(&r, &got)) {
      if (control_seen_) continue;
      return r;
    }
    r = ReceiveOne(0, &got);
    if (got || r.status().code() != StatusCode::kTimedOut) return r;
    if (deadline.Expired()) return Status::TimedOut("no message before the deadline");
    // EINTR, or the timeout rounded down to whole milliseconds: wait for the rest.
  }
}

Result<InMessage> Socket::ReceiveOne(int first_flags, bool* got) {
  std::string routing_id;
  Buffer header;
  std::vector<Buffer> payloads;
  size_t index = 0;
  const size_t first_header = type_ == SocketType::kRouter ? 1 : 0;
  bool truncated = false;
  std::string peer;  // auth=mac: the sender's address, for refusal log lines
  if (mac_ && mac_->HandshakeStale()) TESSERA_RETURN_IF_ERROR(MacSendHandshake({}, mac_->StartHandshake(), 0));
  for (bool more = true; more; ++index) {
    // On the stack: a receive that finds nothing (the drain after every request) costs
    // no allocation; TakeFrame moves what is kept.
    zmq_msg_t frame;
    zmq_msg_t* m = &frame;
    zmq_msg_init(m);
    // Every part of a multipart message arrives together, so only the first may wait.
    if (zmq_msg_recv(m, zsock(), index == 0 ? first_flags : ZMQ_DONTWAIT) < 0) {
      const int err = zmq_errno();
      zmq_msg_close(m);
      if (index == 0 && (err == EAGAIN || err == EINTR)) {
        // A receive that does not wait processes the mailbox before it gives up: nothing
        // is queued and the next arrival will signal ZMQ_FD.
        fd_armed_ = err == EAGAIN && (first_flags & ZMQ_DONTWAIT) != 0;
        return Status::TimedOut("none queued");
      }
      *got = index > 0;
      return ZmqError("zmq_msg_recv", err);
    }
    *got = true;
    more = zmq_msg_more(m) != 0;
    if (index < first_header) {
      routing_id.assign(static_cast<const char*>(zmq_msg_data(m)), zmq_msg_size(m));
      zmq_msg_close(m);
    } else if (index == first_header) {
      if (mac_) {
        const char* a = zmq_msg_gets(m, "Peer-Address");
        peer = a != nullptr ? a : mac_->endpoint();
      }
      header = TakeFrame(m);
    } else if (payloads.size() <= kMaxPayloadFrames + (mac_ ? 1 : 0) + (shm_ ? 1 : 0)) {
      // Room for the trailer (mac), the header behind a shared-memory frame (shm), and one
      // extra, so Decode sees the excess.
      payloads.push_back(TakeFrame(m));
    } else {
      truncated = true;
      // Drain the rest of an over-long message without keeping it; Decode refuses the
      // message for the one extra frame kept above.
      zmq_msg_close(m);
    }
  }
  return ProcessFrames(routing_id, std::move(header), std::move(payloads), index - first_header, truncated, peer, got);
}

Status Socket::SendControlFrame(std::string_view routing_id, std::span<const std::byte> frame, int flags) {
  std::array<std::byte, kTrailerBytes> trailer;
  if (mac_) {  // auth=mac: sealed like any message, so only a session's peer can send one
    const std::span<const std::byte> frames[] = {frame};
    TESSERA_ASSIGN_OR_RETURN(trailer, mac_->Seal(routing_id, frames));
  }
  const LinkOutFrame frames[] = {{nullptr, frame}, {nullptr, trailer}};
  return SendFrames(routing_id, std::span<const LinkOutFrame>(frames, mac_ ? 2 : 1), flags);
}

Status Socket::ZmqSendFrames(std::string_view routing_id, std::span<const LinkOutFrame> frames, int flags) {
  if (type_ == SocketType::kRouter) {
    // auth=mac: a failed send to a gone peer keeps its session. Its last messages may
    // still be queued here (a worker that sent SHUTDOWN and exited), and must still
    // open; the bounded session table drops stale sessions (wire/session.cc).
    std::span<const std::byte> id(reinterpret_cast<const std::byte*>(routing_id.data()), routing_id.size());
    TESSERA_RETURN_IF_ERROR(SendFrame(zsock(), nullptr, id, flags | ZMQ_SNDMORE));
  }
  // The first frame decides: once it is queued, ZeroMQ accepts the rest of the message.
  for (size_t i = 0; i < frames.size(); ++i) {
    const int more = i + 1 < frames.size() ? ZMQ_SNDMORE : 0;
    TESSERA_RETURN_IF_ERROR(SendFrame(zsock(), frames[i].owner, frames[i].bytes, flags | more));
  }
  return Status::OK();
}

// ------------------------------------------------------------- auth=mac hooks
// The protocol and its state live in wire/session.h; these only move its frames.

Status Socket::MacSendHandshake(std::string_view routing_id, std::span<const std::byte> frame, int flags) {
  if (type_ == SocketType::kRouter) {
    std::span<const std::byte> id(reinterpret_cast<const std::byte*>(routing_id.data()), routing_id.size());
    TESSERA_RETURN_IF_ERROR(SendFrame(zsock(), nullptr, id, flags | ZMQ_SNDMORE));
  }
  return SendFrame(zsock(), nullptr, frame, flags).WithContext("sending an auth=mac handshake frame");
}

Status Socket::MacAwaitWelcome(Deadline deadline) {
  // Only handshake frames can be valid while the handshake is pending (nothing else has a
  // session yet), so consuming incoming frames here takes nothing from the caller.
  while (!mac_->established()) {
    if (deadline.Expired()) {
      return Status::ResourceExhausted("no WELCOME from " + mac_->endpoint() + " within the send timeout (" +
                                       std::to_string(options_.send_timeout_ms) + " ms) and the hold queue is full");
    }
    const int wait = static_cast<int>(std::min<int64_t>(std::min<int64_t>(deadline.RemainingMillis(), 1000), INT32_MAX));
    if (wait != rcvtimeo_ms_) {
      TESSERA_RETURN_IF_ERROR(SetInt(zsock(), ZMQ_RCVTIMEO, std::max(wait, 1), "ZMQ_RCVTIMEO"));
      rcvtimeo_ms_ = std::max(wait, 1);
    }
    bool got = false;
    Result<InMessage> r = ReceiveOne(0, &got);
    if (r.ok()) LOG(WARNING) << "auth=mac: a message arrived before the WELCOME and was dropped";
  }
  return Status::OK();
}

bool Socket::MacAdmit(const std::string& routing_id, const Buffer& header, std::vector<Buffer>& payloads,
                      size_t frames, bool truncated, const std::string& peer) {
  MacLink::Incoming in;
  if (frames == 1) {
    in = mac_->OnHandshake(routing_id, header.bytes(), peer);
  } else {
    // On the stack: ReceiveOne keeps at most kMaxPayloadFrames + 2 frames behind the header
    // (the shared-memory header, one extra), the last of them the trailer.
    std::array<std::span<const std::byte>, kMaxPayloadFrames + 3> covered;
    size_t k = 0;
    covered[k++] = header.bytes();
    // More frames than that (another path's message) cannot verify either: refused whole.
    if (payloads.size() > covered.size()) truncated = true;
    for (size_t i = 0; i + 1 < payloads.size() && k < covered.size(); ++i) covered[k++] = payloads[i].bytes();
    // A message cut short above cannot verify: its tag covered the dropped frames.
    in = mac_->Open(routing_id, std::span<const std::span<const std::byte>>(covered.data(), k),
                    truncated ? std::span<const std::byte>() : payloads.back().bytes(), peer);
    if (in.verdict == MacLink::Verdict::kData) {
      payloads.pop_back();
      return true;
    }
  }
  // Never blocks: a peer that does not read must not stall the loop (ROUTER); a DEALER's
  // HELLO waits like any send.
  if (!in.reply.empty()) {
    Status st = MacSendHandshake(routing_id, in.reply, type_ == SocketType::kRouter ? ZMQ_DONTWAIT : 0);
    if (!st.ok()) LOG(WARNING) << "auth=mac: " << st.ToString();
  }
  if (in.verdict == MacLink::Verdict::kHandshake && mac_->established()) {
    if (!held_shm_offer_.empty()) {  // the shared-memory offer waited for the session
      Status st = SendControlFrame({}, std::exchange(held_shm_offer_, {}), ZMQ_DONTWAIT);
      if (!st.ok()) LOG(WARNING) << "shared memory offer to " << mac_->endpoint() << " not sent: " << st.ToString();
    }
    SendHeld(mac_->TakeHeld());
  }
  return false;
}

bool Socket::MacIdentityMatches(const std::string& routing_id, const Buffer& header, const std::string& peer) {
  // The session's identity, checked before the codec sees the header; an unreadable
  // sender matches no identity.
  int32_t role = INT32_MIN, rank = INT32_MIN;
  PeekSender(header.bytes(), &role, &rank);
  return mac_->IdentityMatches(routing_id, role, rank, peer);
}

}  // namespace tessera::wire
