// Socket's receive path after the frames are in hand (from ZeroMQ, wire/socket.cc, or
// the local link, wire/socket_link.cc): authentication, transport frames, the codec.
#include <glog/logging.h>
#include <zmq.h>

#include "wire/socket.h"

namespace tessera::wire {

// The frames of one message, from ZeroMQ or the local link: authentication, transport
// frames, the shared-memory descriptor, then the codec.
Result<InMessage> Socket::ProcessFrames(const std::string& routing_id, Buffer header, std::vector<Buffer> payloads,
                                        size_t frames, bool truncated, const std::string& peer, bool* got) {
  if (mac_ && frames > 0 && !MacAdmit(routing_id, header, payloads, frames, truncated, peer)) {
    control_seen_ = true;  // a handshake frame or a refused message: nothing for the caller
    *got = false;
    return Status::TimedOut("none queued");
  }
  // Same-host shared memory: a transport frame before the header (wire/shm_channel.h).
  // It is a frame of its own: alone, a handshake frame for this socket; before a header,
  // the descriptor of the payloads that travel in shared memory.
  Buffer shm_frame;
  if (shm_ && frames > 0 && IsShmFrame(header.bytes())) {
    shm_frame = std::move(header);
    header = Buffer();
    if (payloads.empty()) {
      HandleShmControl(routing_id, shm_frame);
      control_seen_ = true;
      *got = false;
      return Status::TimedOut("only a shared-memory control frame was queued");
    }
    header = std::move(payloads.front());
    payloads.erase(payloads.begin());
  }
  if (mac_ && type_ == SocketType::kRouter && !MacIdentityMatches(routing_id, header, peer)) {
    control_seen_ = true;
    *got = false;
    return Status::TimedOut("none queued");
  }
  Result<InMessage> r = [&]() -> Result<InMessage> {
    if (frames == 0) return Status::Corruption("message without a header frame");
    std::vector<std::shared_ptr<const ShmStream>> streams;
    if (!shm_frame.empty()) {
      TESSERA_ASSIGN_OR_RETURN(payloads,
                               shm_->Resolve(routing_id, shm_frame.bytes(), std::move(payloads), &streams));
    } else if (shm_) {
      shm_->CountTcpReceived(payloads);
    }
    ++decoded_messages_;
    Result<InMessage> m = Decode(routing_id, header, std::move(payloads), options_.decode);
    if (m.ok() && !streams.empty()) m->set_payload_streams(std::move(streams));
    return m;
  }();
  if (!r.ok()) ReportMalformed(routing_id, header, r.status());
  return r;
}

void Socket::HandleShmControl(const std::string& routing_id, const Buffer& frame) {
  if (shm::IsLinkFrame(frame.bytes())) return HandleLinkControl(routing_id, frame.bytes());
  // A new OFFER under a known routing id is a new connection (a restarted worker with a
  // fixed id): the old one's link, if any, is stale.
  if (type_ == SocketType::kRouter && shm::Reader(frame.bytes()).U32() == shm::kOffer) link_peers_.erase(routing_id);
  std::vector<std::byte> reply;
  Status st = shm_->OnControl(routing_id, frame.bytes(), &reply);
  // Rate-limited: a misbehaving peer must not flood the log.
  if (!st.ok()) {
    LOG_EVERY_T(WARNING, 1.0) << "shared memory: " << st.ToString();
  }
  // Non-blocking, like error replies: the handshake must never stall the loop.
  if (!reply.empty()) SendControlFrame(routing_id, reply, ZMQ_DONTWAIT).IgnoreError();
  // A channel that just came on may also take its messages off ZeroMQ (wire/local_link.h).
  if (type_ == SocketType::kRouter) MaybeOfferLink(routing_id);
}

void Socket::ReportMalformed(const std::string& routing_id, const Buffer& header,
                             const Status& st) {
  const int64_t now = NowMicros();
  if (now - last_log_us_ >= 1000000) {
    LOG(WARNING) << "dropped malformed message" << (routing_id.empty() ? "" : " from a peer")
                 << ": " << st.ToString()
                 << (suppressed_logs_
                         ? " (" + std::to_string(suppressed_logs_) + " more since the last line)"
                         : std::string());
    last_log_us_ = now;
    suppressed_logs_ = 0;
  } else {
    ++suppressed_logs_;
  }
  if (type_ != SocketType::kRouter || !options_.reply_to_malformed || routing_id.empty()) return;
  ReplyTarget target = PeekReplyTarget(routing_id, header.bytes());
  // Never answer an error with an error: two ROUTERs could bounce them forever.
  if (target.op_known && target.in_reply_to == Op::ERROR) return;
  // Non-blocking: a peer that sends garbage and never reads must not stall our loop.
  SendImpl(MakeErrorReply(target, st), routing_id, ZMQ_DONTWAIT).IgnoreError();
}

}  // namespace tessera::wire
