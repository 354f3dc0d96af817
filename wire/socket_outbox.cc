// Sends that never wait (wire/socket.h, "Sends that never wait"; issue 17): a socket a
// Reactor owns sends without blocking, and what cannot go at once waits in its outbox.
#include <glog/logging.h>
#include <zmq.h>

#include <algorithm>
#include <cstdint>
#include <utility>

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
  if (type_ == SocketType::kRouter) return "peer '" + std::string(rid) + "'";
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
                                     std::to_string(it->second.size()) + " messages wait for it");
  }
  return SendImpl(std::move(msg), routing_id, ZMQ_DONTWAIT);
}

Status Socket::Enqueue(std::string_view rid, OutMessage&& msg) {
  auto it = outbox_.find(rid);
  const size_t bound = OutboxBound(options_);
  if (it != outbox_.end() && it->second.size() >= bound) {
    return Status::ResourceExhausted("sending " + OpName(msg.op()) + " to " + PeerName(rid) + ": its send queue (" +
                                     std::to_string(options_.send_hwm) + " messages) and the outbox behind it (" +
                                     std::to_string(bound) + ") are full; the peer is slow, unreachable or gone");
  }
  if (it == outbox_.end()) it = outbox_.emplace(std::string(rid), std::deque<OutMessage>()).first;
  it->second.push_back(std::move(msg));
  ++outboxed_;
  return Status::OK();
}

void Socket::FlushOutbox() {
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    std::deque<OutMessage>& q = it->second;
    while (!q.empty()) {
      Status st = SendImpl(std::move(q.front()), it->first, ZMQ_DONTWAIT);
      if (st.code() == StatusCode::kResourceExhausted) break;
      if (!st.ok()) {
        LOG_EVERY_N(WARNING, 100) << "a queued send to " << PeerName(it->first) << " dropped: " << st.ToString();
      }
      q.pop_front();
      --outboxed_;
    }
    it = q.empty() ? outbox_.erase(it) : std::next(it);
  }
}

void Socket::AbandonQueued() {
  outbox_.clear();
  outboxed_ = 0;
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
  std::deque<OutMessage>& q = outbox_[std::string()];
  const size_t bound = OutboxBound(options_);
  while (!held.empty()) {
    if (q.size() >= bound && q.size() - bound >= static_cast<size_t>(std::max(options_.send_hwm, 1))) {
      LOG(WARNING) << "auth=mac: " << held.size() << " sends held for the handshake dropped: the outbox is full";
      break;
    }
    q.push_front(std::move(held.back()));
    held.pop_back();
    ++outboxed_;
  }
  if (q.empty()) outbox_.erase(std::string());
  FlushOutbox();
}

}  // namespace tessera::wire
