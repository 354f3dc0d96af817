// Sends that never wait (wire/socket.h, "Sends that never wait"; issue 17): a socket a
// Reactor owns sends without blocking, and what cannot go at once waits in its outbox.
#include <glog/logging.h>
#include <zmq.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "common/clock.h"

#include "wire/socket.h"

namespace tessera::wire {

void Socket::NeverWait() {
  // Every ZeroMQ send of this socket, those of the auth=mac handshake included, fails
  // with EAGAIN instead of waiting; the link and the hold queue read never_wait_.
  const int zero = 0;
  if (zmq_setsockopt(zsock(), ZMQ_SNDTIMEO, &zero, sizeof(zero)) != 0) {
    LOG(ERROR) << "ZMQ_SNDTIMEO: " << zmq_strerror(zmq_errno());
    return;
  }
  never_wait_ = true;
}

std::string Socket::PeerName(std::string_view rid) const {
  if (type_ == SocketType::kRouter) {
    // ZeroMQ's generated routing ids are binary (a zero byte, then 4 bytes): in hex.
    const bool printable =
        !rid.empty() && std::all_of(rid.begin(), rid.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
    if (printable) return "peer '" + std::string(rid) + "'";
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex = "peer 0x";
    for (char c : rid) {
      hex += kHex[static_cast<unsigned char>(c) >> 4];
      hex += kHex[static_cast<unsigned char>(c) & 15];
    }
    return hex;
  }
  return endpoint_.empty() ? std::string("the peer") : endpoint_;
}

namespace {

// How many messages one peer's outbox holds.
size_t OutboxBound(const SocketOptions& o) {
  if (o.outbox_hwm == 0) return SIZE_MAX;
  return static_cast<size_t>(std::max(o.outbox_hwm < 0 ? o.send_hwm : o.outbox_hwm, 1));
}

// The outbox a message to `routing_id` queues in: the ROUTER peer's, or a DEALER's one.
std::string_view OutboxKey(SocketType type, const OutMessage& msg, std::string_view routing_id) {
  if (type != SocketType::kRouter) return {};
  return routing_id.empty() ? std::string_view(msg.routing_id()) : routing_id;
}

// What one queued message counts for besides its payload: its header and bookkeeping,
// so a flood of replies without payload (errors) is bounded by outbox_max_bytes too.
constexpr uint64_t kMessageOverheadBytes = 512;

}  // namespace

Status Socket::Send(OutMessage&& msg, std::string_view routing_id) {
  if (!never_wait_) return SendImpl(std::move(msg), routing_id, /*flags=*/0);
  const std::string_view rid = OutboxKey(type_, msg, routing_id);
  // Behind messages already waiting for that peer: per-peer order holds.
  if (outbox_.find(rid) == outbox_.end()) {
    Status st = SendImpl(std::move(msg), routing_id, ZMQ_DONTWAIT);
    // Only "no room now" waits; SendImpl left the message whole (socket.h: on failure
    // nothing of it was sent).
    if (st.code() != StatusCode::kResourceExhausted) return st;
  }
  return Enqueue(rid, std::move(msg));
}

Status Socket::SendIfRoom(OutMessage&& msg, std::string_view routing_id) {
  const std::string_view rid = OutboxKey(type_, msg, routing_id);
  if (auto it = outbox_.find(rid); it != outbox_.end()) {
    return Status::ResourceExhausted(OpName(msg.op()) + " to " + PeerName(rid) + " not sent: " +
                                     std::to_string(it->second.q.size()) + " messages wait for it");
  }
  return SendImpl(std::move(msg), routing_id, ZMQ_DONTWAIT);
}

Status Socket::Enqueue(std::string_view rid, OutMessage&& msg) {
  auto it = outbox_.find(rid);
  const size_t bound = OutboxBound(options_);
  if (it != outbox_.end() && it->second.q.size() >= bound) {
    return Status::ResourceExhausted("sending " + OpName(msg.op()) + " to " + PeerName(rid) + ": its send queue (" +
                                     std::to_string(options_.send_hwm) + " messages) and the outbox behind it (" +
                                     std::to_string(bound) + ") are full; the peer is slow, unreachable or gone");
  }
  const uint64_t bytes = msg.payload_bytes() + kMessageOverheadBytes;
  if (!MakeRoom(rid, bytes)) {
    ++outbox_dropped_;
    LogDrops(rid, 1, bytes, "its backlog is the largest of the outbox, which is full");
    return Status::ResourceExhausted("sending " + OpName(msg.op()) + " to " + PeerName(rid) + ": the outbox holds " +
                                     std::to_string(outbox_bytes_) + " bytes, most of them for that peer");
  }
  it = outbox_.find(rid);  // MakeRoom may have erased it
  if (it == outbox_.end()) it = outbox_.emplace(std::string(rid), PeerOutbox()).first;
  it->second.q.push_back(Outboxed{std::move(msg), NowMicros(), bytes});
  it->second.bytes += bytes;
  outbox_bytes_ += bytes;
  ++outboxed_;
  return Status::OK();
}

bool Socket::MakeRoom(std::string_view rid, uint64_t bytes) {
  const uint64_t cap = options_.outbox_max_bytes;
  if (cap == 0) return true;
  while (outbox_bytes_ + bytes > cap) {
    // The peer that holds the most is the one not reading: well-behaved peers keep theirs.
    auto largest = outbox_.end();
    for (auto it = outbox_.begin(); it != outbox_.end(); ++it) {
      if (largest == outbox_.end() || it->second.bytes > largest->second.bytes) largest = it;
    }
    if (largest == outbox_.end() || largest->first == rid) return false;
    uint64_t n = 0, freed = 0;
    while (!largest->second.q.empty() && outbox_bytes_ + bytes > cap) {
      freed += largest->second.q.front().bytes;
      ++n;
      DropFront(largest->second);
    }
    LogDrops(largest->first, n, freed, "the outbox is full and that peer's backlog is the largest");
    if (largest->second.q.empty()) outbox_.erase(largest);
  }
  return true;
}

void Socket::DropFront(PeerOutbox& peer) {
  const uint64_t b = peer.q.front().bytes;
  peer.q.pop_front();
  peer.bytes -= b;
  outbox_bytes_ -= b;
  --outboxed_;
  ++outbox_dropped_;
}

void Socket::LogDrops(std::string_view rid, uint64_t n, uint64_t bytes, const char* why) {
  const int64_t now = NowMicros();
  if (now - last_drop_log_us_ < 1000000) {
    suppressed_drop_logs_ += n;
    return;
  }
  LOG(WARNING) << "dropped " << n << " message(s) (" << bytes << " bytes) queued to " << PeerName(rid)
               << ": " << why << "; " << outbox_dropped_ << " dropped so far"
               << (suppressed_drop_logs_ ? " (" + std::to_string(suppressed_drop_logs_) + " unlogged)" : std::string());
  last_drop_log_us_ = now;
  suppressed_drop_logs_ = 0;
}

void Socket::FlushOutbox() {
  const int64_t max_age_us = int64_t{options_.outbox_max_age_ms} * 1000;
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    PeerOutbox& peer = it->second;
    while (!peer.q.empty()) {
      const uint64_t bytes = peer.q.front().bytes;
      Status st = SendImpl(std::move(peer.q.front().msg), it->first, ZMQ_DONTWAIT);
      if (st.code() == StatusCode::kResourceExhausted) {
        // The peer still takes nothing: what waited longer than a blocking send would
        // have waited gives up, as that send did (the queue is in age order).
        if (max_age_us <= 0) break;
        const int64_t oldest = NowMicros() - max_age_us;
        uint64_t n = 0, freed = 0;
        while (!peer.q.empty() && peer.q.front().since_us < oldest) {
          freed += peer.q.front().bytes;
          ++n;
          DropFront(peer);
        }
        if (n > 0) LogDrops(it->first, n, freed, "not sent within the send timeout; the peer does not read");
        break;
      }
      if (!st.ok()) {
        LOG_EVERY_N(WARNING, 100) << "a queued send to " << PeerName(it->first) << " dropped: " << st.ToString();
      }
      peer.q.pop_front();
      peer.bytes -= bytes;
      outbox_bytes_ -= bytes;
      --outboxed_;
    }
    it = peer.q.empty() ? outbox_.erase(it) : std::next(it);
  }
}

void Socket::AbandonQueued() {
  outbox_.clear();
  outboxed_ = 0;
  outbox_bytes_ = 0;
  const int zero = 0;
  if (zmq_setsockopt(zsock(), ZMQ_LINGER, &zero, sizeof(zero)) != 0) {
    LOG(WARNING) << "ZMQ_LINGER: " << zmq_strerror(zmq_errno());
  }
}

void Socket::SendHeld(std::deque<OutMessage> held) {
  if (!never_wait_) {
    for (OutMessage& m : held) {
      Status st = SendImpl(std::move(m), {}, 0);
      if (!st.ok()) LOG(WARNING) << "auth=mac: a send held for the handshake failed: " << st.ToString();
    }
    return;
  }
  // They were sent before anything the outbox holds for this DEALER (which queued only
  // because the hold queue was full): they go in front, within the outbox's bound.
  PeerOutbox& peer = outbox_[std::string()];
  const size_t bound = OutboxBound(options_);
  const int64_t now = NowMicros();
  while (!held.empty()) {
    if (peer.q.size() >= bound && peer.q.size() - bound >= static_cast<size_t>(std::max(options_.send_hwm, 1))) {
      LOG(WARNING) << "auth=mac: " << held.size() << " sends held for the handshake dropped: the outbox is full";
      break;
    }
    const uint64_t bytes = held.back().payload_bytes() + kMessageOverheadBytes;
    peer.q.push_front(Outboxed{std::move(held.back()), now, bytes});
    peer.bytes += bytes;
    outbox_bytes_ += bytes;
    held.pop_back();
    ++outboxed_;
  }
  if (peer.q.empty()) outbox_.erase(std::string());
  FlushOutbox();
}

}  // namespace tessera::wire
