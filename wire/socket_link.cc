// Socket's side of the same-host local link (wire/local_link.h; docs/wire_format.md,
// "Same-host local link"). The set-up, in transport frames over ZeroMQ:
//   ROUTER: channel on  -> LINK_OFFER{name, nonce}           (sealed under auth=mac)
//   DEALER: connect, write nonce -> LINK_HELLO
//   ROUTER: accept, check uid and nonce -> LINK_SWITCH (its last ZeroMQ message to the
//           peer; from then on it sends on the link) or LINK_REFUSE{why}
//   DEALER: on LINK_SWITCH reads the link, answers LINK_SWITCH (its last ZeroMQ
//           message), then sends on the link
//   ROUTER: on the DEALER's LINK_SWITCH reads the link.
// Each side reads the link only after the other's last ZeroMQ message, so every
// message is seen in the order it was sent. Anything that fails before a switch leaves
// the connection on ZeroMQ with one log line. A link that breaks after it (EOF, an
// error, a protocol error) is dropped: what was in flight on it is lost, as with a
// peer that died, the DEALER reports Unavailable once through TryRecv, and both sides
// go back to ZeroMQ for that connection (which queues for a dead peer, as before).
#include <glog/logging.h>
#include <openssl/crypto.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/clock.h"
#include "common/metrics_registry.h"
#include "wire/codec.h"
#include "wire/shm_frames.h"
#include "wire/socket.h"

DECLARE_bool(shm_link);

namespace tessera::wire {

namespace {

constexpr int64_t kNonceWaitUs = 2'000'000;  // an accepted connection must write its nonce by then
constexpr size_t kMaxPendingAccepts = 64;

std::vector<std::byte> LinkFrame(shm::Kind kind) { return shm::Writer(kind).Take(); }

// Process-wide, for the metrics endpoint and `tessera status` (docs/metrics.md); the
// per-socket LinkStats count the same events.
struct LinkMetrics {
  metrics::Counter& up = metrics::Global().GetCounter("link_up_total");
  metrics::Counter& refused = metrics::Global().GetCounter("link_refused_total");
  metrics::Counter& dropped = metrics::Global().GetCounter("link_dropped_total");
  metrics::Counter& sent = metrics::Global().GetCounter("link_messages_sent_total");
  metrics::Counter& received = metrics::Global().GetCounter("link_messages_received_total");
};
LinkMetrics& Metrics() {
  static LinkMetrics m;
  return m;
}

}  // namespace

void Socket::EnableLocalLink() { link_allowed_ = FLAGS_shm_link && shm_ != nullptr && shm_->enabled(); }

void Socket::CloseLinks() {
  link_peers_.clear();
  link_ready_.clear();
  for (const PendingAccept& p : link_accepts_) close(p.fd);
  link_accepts_.clear();
  link_lost_ = Status::OK();
  link_lost_reported_ = false;
  if (link_listen_fd_ >= 0) {  // a ROUTER's, at destruction
    close(link_listen_fd_);
    link_listen_fd_ = -1;
  }
}

std::string Socket::link_state(std::string_view routing_id) const {
  auto it = link_peers_.find(type_ == SocketType::kRouter ? routing_id : std::string_view());
  if (it == link_peers_.end() || !it->second.link) return it == link_peers_.end() ? "off" : "pending";
  const LinkPeer& p = it->second;
  if (p.tx && p.rx) return "on";
  if (p.tx) return "tx";
  if (p.rx) return "rx";
  return "pending";
}

int Socket::TEST_link_fd() const {
  auto it = link_peers_.find(std::string_view());
  return it == link_peers_.end() || !it->second.link ? -1 : it->second.link->fd();
}

void Socket::AppendLinkPollFds(std::vector<PollFd>* out) const {
  for (const auto& [rid, p] : link_peers_) {
    if (!p.link) continue;
    short ev = 0;
    // Messages read but not yet handled are bounded like ZeroMQ's receive queue: past
    // the bound the rest waits in the kernel, and then in the sender's queue.
    if (p.rx && link_ready_.size() < LinkReadyBound()) ev |= ZMQ_POLLIN;
    if (p.link->wants_write()) ev |= ZMQ_POLLOUT;
    if (ev != 0) out->push_back(PollFd{p.link->fd(), ev});
  }
}

void Socket::OnLinkEvents(int fd, short revents) {
  std::string rid;
  LinkPeer* peer = nullptr;
  for (auto& [r, p] : link_peers_) {
    if (p.link && p.link->fd() == fd) {
      rid = r;
      peer = &p;
      break;
    }
  }
  if (peer == nullptr) return;  // dropped earlier in this turn
  Status st;
  if ((revents & ZMQ_POLLOUT) != 0) st = peer->link->Flush();
  if (!st.ok() || (!peer->rx && (revents & ZMQ_POLLERR) != 0)) {
    // The peer closed its end (or the write failed): what it wrote before is still to
    // be read, in order, once its switch lets us (LinkWriteFailed).
    LinkWriteFailed(rid, st.ok() ? Status::Unavailable("the local link failed") : st);
    return;
  }
  if (peer->rx && (revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0) st = peer->link->Read(256u << 10);
  // Messages that arrived whole before an EOF are still delivered, in order, before the loss.
  while (peer->link->has_message()) link_ready_.emplace_back(rid, peer->link->PopMessage());
  if (!st.ok()) DropLink(rid, st);
}

bool Socket::LinkReceiveOne(Result<InMessage>* out, bool* got) {
  if (link_ready_.empty()) {
    if (link_lost_.ok() || link_lost_reported_) return false;
    link_lost_reported_ = true;  // reported once: the reactor's error handler sees it
    *got = true;
    *out = link_lost_;
    return true;
  }
  auto [rid, frames] = std::move(link_ready_.front());
  link_ready_.pop_front();
  ++link_stats_.messages_received;
  Metrics().received.Add(1);
  *got = true;
  const size_t n = frames.size();
  Buffer header = std::move(frames.front());
  frames.erase(frames.begin());
  *out = ProcessFrames(rid, std::move(header), std::move(frames), n, false, "the local link", got);
  return true;
}

Status Socket::SendFrames(std::string_view routing_id, std::span<const LinkOutFrame> frames, int flags) {
  auto it = link_peers_.find(type_ == SocketType::kRouter ? routing_id : std::string_view());
  if (it == link_peers_.end() || !it->second.tx || it->second.tx_failed || !it->second.link) {
    return ZmqSendFrames(routing_id, frames, flags);
  }
  const int wait_ms = (flags & ZMQ_DONTWAIT) != 0 ? 0 : options_.send_timeout_ms;
  LinkPeer& p = it->second;
  Status st = p.link->Send(frames, wait_ms, /*read_while_waiting=*/p.rx && link_ready_.size() < LinkReadyBound());
  while (p.rx && p.link->has_message()) link_ready_.emplace_back(std::string(it->first), p.link->PopMessage());
  if (st.ok()) {
    ++link_stats_.messages_sent;
    Metrics().sent.Add(1);
  } else if (st.code() != StatusCode::kResourceExhausted) {
    // The link broke: this message and the later ones go to ZeroMQ, which queues them
    // for a peer that is gone exactly as it did before the switch (the coordinator, not
    // the transport, decides that a process is dead).
    LinkWriteFailed(std::string(it->first), st);
    return ZmqSendFrames(routing_id, frames, flags);
  }
  return st;
}

void Socket::MaybeOfferLink(const std::string& routing_id) {
  if (!link_allowed_ || link_peers_.count(routing_id) != 0 || shm_->ChannelState(routing_id) != "on") return;
  if (link_listen_fd_ < 0) {
    Result<int> fd = link::Listen(&link_name_);
    if (!fd.ok()) {
      LOG_FIRST_N(WARNING, 1) << "local link: no listener, messages stay on ZeroMQ: " << fd.status().ToString();
      link_allowed_ = false;
      return;
    }
    link_listen_fd_ = *fd;
  }
  LinkPeer& p = link_peers_[routing_id];
  p.nonce = link::RandomNonce();
  shm::Writer w(shm::kLinkOffer);
  w.Str(test_offer_name_.empty() ? link_name_ : test_offer_name_);
  uint64_t n[2];
  std::memcpy(n, p.nonce.data(), sizeof(n));
  if (test_wrong_nonce_) n[0] ^= 1;
  w.U64(n[0]);
  w.U64(n[1]);
  Status st = SendControlFrame(routing_id, w.Take(), ZMQ_DONTWAIT);
  if (!st.ok()) VLOG(1) << "local link: offer not sent: " << st.ToString();
}

void Socket::AcceptLinks() {
  for (;;) {
    const int fd = accept4(link_listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    if (link_accepts_.size() >= kMaxPendingAccepts) {
      close(link_accepts_.front().fd);
      link_accepts_.erase(link_accepts_.begin());
      ++link_stats_.refused;
      Metrics().refused.Add(1);
    }
    link_accepts_.push_back(PendingAccept{fd, NowMicros()});
  }
  const uint32_t our_uid = static_cast<uint32_t>(geteuid());
  for (size_t i = 0; i < link_accepts_.size();) {
    const int fd = link_accepts_[i].fd;
    std::string why;
    bool keep = false;
    Result<uint32_t> uid = link::PeerUid(fd);
    LinkNonce got{};
    const ssize_t r = uid.ok() ? recv(fd, got.data(), got.size(), MSG_DONTWAIT | MSG_PEEK) : -1;
    if (!uid.ok()) {
      why = uid.status().ToString();
    } else if (*uid != our_uid) {
      why = "a connection from uid " + std::to_string(*uid) + " (ours is " + std::to_string(our_uid) + ")";
    } else if (r < static_cast<ssize_t>(got.size())) {
      keep = (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) &&
             NowMicros() - link_accepts_[i].since_us < kNonceWaitUs;
      why = "a connection that wrote no nonce";
    } else {
      if (recv(fd, got.data(), got.size(), MSG_DONTWAIT) != static_cast<ssize_t>(got.size())) {
        why = "a connection whose nonce could not be read";
      } else {
        LinkPeer* match = nullptr;
        for (auto& [rid, p] : link_peers_) {
          if (!p.link && CRYPTO_memcmp(p.nonce.data(), got.data(), got.size()) == 0) match = &p;
        }
        if (match != nullptr) {
          match->link = std::make_unique<LocalLink>(fd, MaxMessageBytes(options_.decode),
                                                    static_cast<size_t>(std::max(options_.send_hwm, 1)));
          link_accepts_.erase(link_accepts_.begin() + static_cast<std::ptrdiff_t>(i));
          continue;
        }
        why = "a connection with a wrong nonce";
      }
    }
    if (keep) {
      ++i;
      continue;
    }
    LOG(WARNING) << "local link: refused " << why << "; that peer stays on ZeroMQ";
    ++link_stats_.refused;
    Metrics().refused.Add(1);
    close(fd);
    link_accepts_.erase(link_accepts_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

void Socket::HandleLinkControl(const std::string& routing_id, std::span<const std::byte> frame) {
  shm::Reader r(frame);
  const uint32_t kind = r.U32();
  r.U32();  // version: the shared-memory one, checked by the channel's handshake
  const bool router = type_ == SocketType::kRouter;
  auto it = link_peers_.find(router ? std::string_view(routing_id) : std::string_view());
  LinkPeer* p = it == link_peers_.end() ? nullptr : &it->second;
  if (!router) {
    if (kind == shm::kLinkOffer) {
      const std::string name = r.Str(256);
      uint64_t n[2] = {r.U64(), r.U64()};
      if (!r.ok() || !r.at_end()) {
        LOG_EVERY_T(WARNING, 1.0) << "local link: a malformed offer from " << endpoint_;
        return;
      }
      // Only a peer whose shared-memory channel works is on this host.
      if (!link_allowed_ || p != nullptr || shm_->ChannelState() != "on") return;
      LinkNonce nonce;
      std::memcpy(nonce.data(), n, sizeof(n));
      Result<int> fd = link::ConnectAndSendNonce(name, nonce);
      if (!fd.ok()) {
        LOG(WARNING) << "local link to " << endpoint_ << ": " << fd.status().ToString() << "; staying on ZeroMQ";
        ++link_stats_.refused;
        Metrics().refused.Add(1);
        return;
      }
      LinkPeer& np = link_peers_[""];
      np.link = std::make_unique<LocalLink>(*fd, MaxMessageBytes(options_.decode),
                                            static_cast<size_t>(std::max(options_.send_hwm, 1)));
      Status st = SendControlFrame({}, LinkFrame(shm::kLinkHello), ZMQ_DONTWAIT);
      if (!st.ok()) {
        LOG(WARNING) << "local link to " << endpoint_ << ": hello not sent (" << st.ToString() << "); staying on ZeroMQ";
        link_peers_.erase("");
      }
      return;
    }
    if (p == nullptr) return;
    if (kind == shm::kLinkSwitch && !p->rx) {
      p->rx = true;  // everything the server sends from now on comes on the link
      Status st = SendControlFrame({}, LinkFrame(shm::kLinkSwitch), ZMQ_DONTWAIT);
      if (!st.ok()) {  // our messages stay on ZeroMQ, which the server keeps reading
        LOG(WARNING) << "local link to " << endpoint_ << ": switch not sent (" << st.ToString()
                     << "); requests stay on ZeroMQ";
        return;
      }
      p->tx = true;
      ++link_stats_.links_up;
      Metrics().up.Add(1);
      VLOG(1) << "local link to " << endpoint_ << " on";
    } else if (kind == shm::kLinkRefuse) {
      LOG(WARNING) << "local link to " << endpoint_ << " refused by the server: " << r.Str(4096)
                   << "; staying on ZeroMQ";
      ++link_stats_.refused;
      Metrics().refused.Add(1);
      link_peers_.erase(it);
    }
    return;
  }
  if (p == nullptr) return;  // never offered: nothing to switch
  if (kind == shm::kLinkHello && !p->tx) {
    AcceptLinks();
    if (!p->link) {
      LOG(WARNING) << "local link: a peer said hello but no connection carried its nonce; it stays on ZeroMQ";
      ++link_stats_.refused;
      Metrics().refused.Add(1);
      shm::Writer w(shm::kLinkRefuse);
      w.Str("no connection carried the nonce");
      SendControlFrame(routing_id, w.Take(), ZMQ_DONTWAIT).IgnoreError();
      link_peers_.erase(it);
      return;
    }
    // Our last ZeroMQ message to this peer; everything after it goes on the link.
    Status st = SendControlFrame(routing_id, LinkFrame(shm::kLinkSwitch), ZMQ_DONTWAIT);
    if (!st.ok()) {
      LOG(WARNING) << "local link: switch not sent (" << st.ToString() << "); that peer stays on ZeroMQ";
      link_peers_.erase(it);
      return;
    }
    p->tx = true;
  } else if (kind == shm::kLinkSwitch && p->tx && !p->rx) {
    p->rx = true;  // the peer's last ZeroMQ message: read its link from now on
    ++link_stats_.links_up;
    Metrics().up.Add(1);
  }
}

void Socket::LinkWriteFailed(const std::string& routing_id, const Status& why) {
  auto it = link_peers_.find(routing_id);
  if (it == link_peers_.end()) return;
  LinkPeer& p = it->second;
  p.tx_failed = true;
  if (!p.rx) {
    // Not reading the link yet: the peer's switch is still on its way through ZeroMQ,
    // and its link messages come after it. The fd stays (unpolled) until then.
    VLOG(1) << "local link: a write failed before the peer's switch: " << why.ToString();
    return;
  }
  // A peer that closed its end has nothing more coming: everything it sent is in the
  // kernel (at most its socket buffer), then its EOF.
  Status st = p.link->Read(SIZE_MAX);
  while (p.link->has_message()) link_ready_.emplace_back(routing_id, p.link->PopMessage());
  DropLink(routing_id, st.ok() ? why : st);
}

void Socket::DropLink(const std::string& routing_id, const Status& why) {
  auto it = link_peers_.find(routing_id);
  if (it == link_peers_.end()) return;
  const bool was_used = it->second.tx || it->second.rx;
  link_peers_.erase(it);
  ++link_stats_.dropped;
  Metrics().dropped.Add(1);
  // An EOF is a peer that exited (a worker at the end of its job: not news); anything
  // else is a fault worth a line.
  const bool eof = why.code() == StatusCode::kUnavailable;
  if (type_ == SocketType::kRouter) {
    // Like a peer that disconnected: its later sends go to ZeroMQ, it may connect again.
    if (eof) {
      VLOG(1) << "local link: a peer left: " << why.ToString();
    } else {
      LOG_EVERY_T(WARNING, 1.0) << "local link: dropped a peer: " << why.ToString();
    }
    return;
  }
  LOG_IF(WARNING, !eof) << "local link to " << endpoint_ << " lost, back to ZeroMQ: " << why.ToString();
  LOG_IF(INFO, eof) << "local link to " << endpoint_ << " lost, back to ZeroMQ: " << why.ToString();
  if (was_used) {  // reported once through TryRecv (the reactor's error handler)
    link_lost_ = Status::Unavailable("the local link to the server at " + endpoint_ + " closed: " + why.message());
    link_lost_reported_ = false;
  }
}

}  // namespace tessera::wire
