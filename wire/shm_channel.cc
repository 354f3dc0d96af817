#include "wire/shm_channel.h"

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>

#include "common/hostname.h"
#include "common/metrics_registry.h"

namespace {
bool ValidateShmMode(const char* /*flag*/, const std::string& v) {
  if (v == "auto" || v == "off") return true;
  fprintf(stderr, "--shm must be auto or off, not '%s'\n", v.c_str());
  return false;
}
}  // namespace

DEFINE_string(shm, "auto",
              "Same-host shared memory for message payloads: auto (with peers on this host, TCP otherwise) "
              "or off (TCP only)");
DEFINE_validator(shm, &ValidateShmMode);
DEFINE_uint64(shm_arena_bytes, 256ULL << 20,
              "Size of each shared-memory arena (one per connection and direction; sparse, only touched pages "
              "cost memory); larger payloads go over TCP");
DECLARE_bool(shm_stream);  // wire/shm_stream.cc
DEFINE_uint64(shm_min_bytes, 64ULL << 10, "Payloads smaller than this go over TCP even between processes on one host");

namespace tessera::wire {

namespace {

using namespace shm;  // the frame vocabulary (wire/shm_frames.h)

// Process-wide, for the metrics endpoint and `tessera status` (docs/metrics.md).
struct ShmMetrics {
  metrics::Counter& bytes_sent = metrics::Global().GetCounter("shm_bytes_sent_total");
  metrics::Counter& bytes_received = metrics::Global().GetCounter("shm_bytes_received_total");
  metrics::Counter& fallbacks = metrics::Global().GetCounter("shm_fallback_payloads_total");
  metrics::Counter& refused = metrics::Global().GetCounter("shm_refused_descriptors_total");
  metrics::Counter& streamed_sent = metrics::Global().GetCounter("shm_streamed_payloads_sent_total");
  metrics::Counter& in_place_sent = metrics::Global().GetCounter("shm_in_place_payloads_sent_total");
  metrics::Counter& streamed_received = metrics::Global().GetCounter("shm_streamed_payloads_received_total");
};
ShmMetrics& Metrics() {
  static ShmMetrics m;
  return m;
}

uint64_t RandomNonce() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0
}

bool ResolveEnabled(ShmMode m) {
  if (m == ShmMode::kFlag) return FLAGS_shm != "off";
  return m == ShmMode::kAuto;
}

std::vector<std::byte> EncodeOffer(Kind k, const ShmTxArena& a, uint64_t nonce, const std::string& host) {
  Writer w(k);
  w.U32(static_cast<uint32_t>(getpid()));
  w.U32(static_cast<uint32_t>(a.fd()));
  w.U32(static_cast<uint32_t>(geteuid()));
  w.U64(a.size());
  w.U64(nonce);
  w.Str(host);
  return w.Take();
}

}  // namespace

const std::string& HostIdentity() {
  static const std::string id = [] {
    std::string boot;
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::getline(f, boot);
    // The network namespace too: a process in another one is set up to be reached over
    // a network (test clusters, fault injection on a veth), whatever its host name.
    char net[64] = {0};
    const ssize_t n = readlink("/proc/self/ns/net", net, sizeof(net) - 1);
    return boot + "|" + Hostname() + "|" + (n > 0 ? std::string(net, static_cast<size_t>(n)) : "net:?") +
           "|uid=" + std::to_string(geteuid());
  }();
  return id;
}

ShmTransport::ShmTransport(bool router, const ShmOptions& o)
    : router_(router),
      enabled_(ResolveEnabled(o.mode)),
      arena_bytes_(o.arena_bytes ? o.arena_bytes : FLAGS_shm_arena_bytes),
      min_bytes_(std::max<uint64_t>(1, o.min_bytes ? o.min_bytes : FLAGS_shm_min_bytes)),
      host_(o.host_identity.empty() ? HostIdentity() : o.host_identity),
      accept_streamed_(o.accept_streamed) {}

ShmTransport::~ShmTransport() = default;

ShmTransport::Channel* ShmTransport::Find(std::string_view peer) {
  if (!router_) return &dealer_;
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : &it->second;
}

void ShmTransport::TurnOff(Channel& c, const std::string& why) {
  if (!c.off_reason.empty()) return;
  c.off_reason = why;
  c.tx.reset();
  c.tx_ready = false;
  c.rx.reset();
  if (!router_) {
    LOG(INFO) << "shared memory off for " << endpoint_ << ": " << why << "; payloads go over TCP";
  }
}

std::optional<std::vector<std::byte>> ShmTransport::OnConnect(const std::string& endpoint) {
  if (router_ || !enabled_) {
    static std::once_flag once;
    if (!router_) std::call_once(once, [] { LOG(INFO) << "shared memory off (--shm=off): payloads go over TCP"; });
    return std::nullopt;
  }
  if (++connects_ > 1) {
    // A DEALER with several peers spreads messages over them; one channel cannot follow.
    TurnOff(dealer_, "the socket connects to a second endpoint (" + endpoint + ")");
    return std::nullopt;
  }
  endpoint_ = endpoint;
  auto tx = ShmTxArena::Create(arena_bytes_);
  if (!tx.ok()) {
    TurnOff(dealer_, "cannot create an arena: " + tx.status().ToString());
    return std::nullopt;
  }
  dealer_.tx = std::move(tx).value();
  dealer_.tx_nonce = RandomNonce();
  return EncodeOffer(kOffer, *dealer_.tx, dealer_.tx_nonce, host_);
}

Status ShmTransport::OnControl(const std::string& peer, std::span<const std::byte> frame,
                               std::vector<std::byte>* reply) {
  reply->clear();
  Reader r(frame);
  const uint32_t kind = r.U32();
  const uint32_t version = r.U32();
  if (!r.ok()) return Status::Corruption("short shared-memory control frame");
  if (version != kShmVersion) {
    if (kind == kOffer) *reply = EncodeRefuse("shared-memory version " + std::to_string(version) + " != ours");
    return Status::VersionMismatch("shared-memory version " + std::to_string(version) + " != ours " +
                                   std::to_string(kShmVersion));
  }
  if (router_) {
    switch (kind) {
      case kOffer:
        return OnOffer(peer, frame, reply);
      case kConfirm: {
        Channel* c = Find(peer);
        if (c == nullptr || !c->tx || !c->off_reason.empty()) return Status::OK();
        c->tx_ready = true;
        // Capabilities: absent from older DEALERs, which then never stream.
        const uint32_t caps = r.at_end() ? 0 : r.U32();
        if (r.ok() && (caps & kCapStreams) != 0 && accept_streamed_ && FLAGS_shm_stream && c->rx) {
          c->rx_streams = true;
          *reply = Writer(kStreamOk).Take();
        }
        if (r.ok() && (caps & kCapTakesStreams) != 0 && FLAGS_shm_stream) c->tx_streams = true;
        return Status::OK();
      }
      case kRefuse: {  // the DEALER cannot map our arena: replies go over TCP
        Channel* c = Find(peer);
        const std::string why = r.Str(4096);
        if (c != nullptr) {
          c->tx.reset();
          c->tx_ready = false;
        }
        VLOG(1) << "shared memory: a peer cannot map our arena: " << why;
        return Status::OK();
      }
      default:
        return Status::Corruption("unexpected shared-memory control frame kind " + std::to_string(kind));
    }
  }
  if (!enabled_ || !dealer_.off_reason.empty() || !dealer_.tx) return Status::OK();  // off already
  switch (kind) {
    case kAccept: {
      if (dealer_.tx_ready) return Status::Corruption("a second shared-memory ACCEPT");  // answered once
      Offer o;
      if (!DecodeOffer(r, &o)) {
        TurnOff(dealer_, "the peer sent a malformed ACCEPT");
        return Status::Corruption("malformed shared-memory ACCEPT");
      }
      dealer_.tx_ready = true;  // the ROUTER mapped our arena
      auto rx = ShmPeerArena::Open(static_cast<pid_t>(o.pid), o.fd, o.bytes);
      if (!rx.ok()) {
        LOG(INFO) << "shared memory for replies from " << endpoint_ << " off: " << rx.status().message()
                  << "; replies go over TCP";
        *reply = EncodeRefuse(rx.status().message());
        return Status::OK();
      }
      dealer_.rx = std::move(rx).value();
      dealer_.rx_nonce = o.nonce;
      Writer w(kConfirm);
      // An older ROUTER ignores the body.
      if (FLAGS_shm_stream) {
        dealer_.rx_streams = accept_streamed_;
        w.U32(kCapStreams | (accept_streamed_ ? kCapTakesStreams : 0));
      }
      *reply = w.Take();
      VLOG(1) << "shared memory on for " << endpoint_;
      return Status::OK();
    }
    case kRefuse:
      TurnOff(dealer_, r.Str(4096));
      return Status::OK();
    case kStreamOk:
      if (dealer_.rx) dealer_.tx_streams = true;
      return Status::OK();
    default:
      return Status::Corruption("unexpected shared-memory control frame kind " + std::to_string(kind));
  }
}

Status ShmTransport::OnOffer(const std::string& peer, std::span<const std::byte> frame,
                             std::vector<std::byte>* reply) {
  Reader r(frame);
  r.U32();
  r.U32();
  Offer o;
  if (!DecodeOffer(r, &o)) {
    *reply = EncodeRefuse("malformed OFFER");
    return Status::Corruption("malformed shared-memory OFFER");
  }
  auto refuse = [&](const std::string& why) {
    *reply = EncodeRefuse(why);
    return Status::OK();
  };
  peers_.erase(peer);  // a reconnecting peer replaces its old channel
  // Channels of exited peers (their arena was detached by the reaper) are dropped here.
  std::erase_if(peers_, [](const auto& kv) { return kv.second.rx && kv.second.rx->detached(); });
  if (!enabled_) return refuse("shared memory is off on the peer (--shm=off)");
  if (o.host != host_) {
    return refuse("another host: the peer is on " + host_ + ", this process on " + o.host);
  }
  if (o.uid != geteuid()) {
    return refuse("another user: the peer runs as uid " + std::to_string(geteuid()) + ", this process as " +
                  std::to_string(o.uid));
  }
  constexpr size_t kMaxChannels = 4096;
  if (peers_.size() >= kMaxChannels) return refuse("the peer has too many shared-memory channels");
  auto rx = ShmPeerArena::Open(static_cast<pid_t>(o.pid), o.fd, o.bytes);
  if (!rx.ok()) return refuse("the peer cannot map this socket's arena: " + rx.status().message());
  auto tx = ShmTxArena::Create(arena_bytes_);
  if (!tx.ok()) return refuse("the peer cannot create an arena: " + tx.status().message());
  Channel& c = peers_[peer];
  c.rx = std::move(rx).value();
  c.rx_nonce = o.nonce;
  c.tx = std::move(tx).value();
  c.tx_nonce = RandomNonce();
  *reply = EncodeOffer(kAccept, *c.tx, c.tx_nonce, host_);
  return Status::OK();
}

std::vector<std::byte> ShmTransport::Place(std::string_view peer, const std::vector<OutMessage::Payload>& payloads,
                                           std::vector<bool>* in_shm, std::vector<ShmPendingCopy>* streamed) {
  in_shm->assign(payloads.size(), false);
  if (streamed != nullptr) streamed->clear();
  Channel* c = Find(peer);
  bool usable = c != nullptr && c->tx && c->tx_ready;
  if (usable && c->rx && c->rx->detached()) {  // the peer process exited
    if (router_) {
      peers_.erase(peers_.find(peer));
    } else {
      TurnOff(dealer_, "the peer process exited (a new one at this endpoint never got our offer)");
    }
    c = nullptr;
    usable = false;
  }
  const bool stream = usable && streamed != nullptr && c->tx_streams;
  // A streamable message's payload that its application writes after the send can go
  // only streamed, from the slot it was given: refuse the message rather than let the
  // bytes not yet written be sent or copied (the channel changed since AllocatePayload).
  if (streamed != nullptr) {
    for (const auto& p : payloads) {
      auto it = reserved_.find(p.bytes.data());
      std::shared_ptr<Reservation> r = it == reserved_.end() ? nullptr : it->second.lock();
      if (r && r->app_streams && !(stream && r->arena == c->tx && r->ref.length == p.bytes.size())) {
        stream_refused_ = true;
        return {};
      }
    }
  }
  std::vector<ShmSlotRef> refs(payloads.size());
  bool any = false;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const auto& bytes = payloads[i].bytes;
    if (usable && !reserved_.empty()) {  // built in place by AllocatePayload: no copy
      auto it = reserved_.find(bytes.data());
      std::shared_ptr<Reservation> r = it == reserved_.end() ? nullptr : it->second.lock();
      if (r && r->arena == c->tx && r->ref.length == bytes.size() && !r->sent.exchange(true)) {
        reserved_.erase(it);
        // Complete already (unless the application publishes it); in a STREAMED_DATA
        // frame it says so.
        if (stream && !r->app_streams) {
          std::atomic_ref<uint64_t>(*c->tx->progress(r->ref)).store(bytes.size(), std::memory_order_release);
        } else if (stream) {
          ++stats_.streamed_payloads_sent;
          Metrics().streamed_sent.Add(1);
        }
        refs[i] = r->ref;
        (*in_shm)[i] = true;
        any = true;
        ++stats_.shm_payloads_sent;
        ++stats_.in_place_payloads_sent;
        Metrics().in_place_sent.Add(1);
        stats_.shm_bytes_sent += bytes.size();
        Metrics().bytes_sent.Add(bytes.size());
        continue;
      }
    }
    if (usable && bytes.size() >= min_bytes_) {
      if (auto ref = stream ? c->tx->Reserve(bytes.size()) : c->tx->Put(bytes)) {
        if (stream) {
          streamed->push_back(ShmPendingCopy{c->tx->data(*ref), bytes, c->tx->progress(*ref)});
          ++stats_.streamed_payloads_sent;
          Metrics().streamed_sent.Add(1);
        }
        refs[i] = *ref;
        (*in_shm)[i] = true;
        any = true;
        ++stats_.shm_payloads_sent;
        stats_.shm_bytes_sent += bytes.size();
        Metrics().bytes_sent.Add(bytes.size());
        continue;
      }
      ++stats_.fallback_payloads;
      Metrics().fallbacks.Add(1);
    }
    ++stats_.tcp_payloads_sent;
    stats_.tcp_bytes_sent += bytes.size();
  }
  if (!any) return {};
  return EncodeShmDataFrame(c->tx_nonce, refs, stream);
}

Buffer ShmTransport::AllocatePayload(std::string_view peer, uint64_t bytes, uint64_t** progress) {
  if (progress != nullptr) *progress = nullptr;
  Channel* c = Find(peer);
  if (c == nullptr || !c->tx || !c->tx_ready || bytes < min_bytes_ || (c->rx && c->rx->detached())) return Buffer();
  std::erase_if(reserved_, [](const auto& kv) { return kv.second.expired(); });
  std::optional<ShmSlotRef> ref = c->tx->Reserve(bytes);
  if (!ref) return Buffer();
  auto r = std::make_shared<Reservation>();
  r->arena = c->tx;
  r->ref = *ref;
  if (progress != nullptr && c->tx_streams) {
    r->app_streams = true;
    *progress = c->tx->progress(*ref);
  }
  std::byte* data = c->tx->data(*ref);
  reserved_[data] = r;
  return Buffer::Wrap(data, bytes, Device::kCPU, [r] {
    if (!r->sent.exchange(true)) r->arena->Abandon(r->ref);
  });
}

void ShmTransport::Abandon(std::string_view peer, std::span<const std::byte> data_frame) {
  Channel* c = Find(peer);
  if (c == nullptr || !c->tx) return;
  Reader r(data_frame);
  r.U32();
  r.U32();
  r.U64();
  const uint32_t n = r.U32();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ShmSlotRef ref{r.U64(), r.U64(), r.U64()};
    if (r.ok() && ref.token != 0) {
      c->tx->Abandon(ref);
      --stats_.shm_payloads_sent;
      stats_.shm_bytes_sent -= ref.length;
    }
  }
}

Result<std::vector<Buffer>> ShmTransport::Resolve(const std::string& peer, std::span<const std::byte> frame,
                                                  std::vector<Buffer> tcp_frames,
                                                  std::vector<std::shared_ptr<const ShmStream>>* streams) {
  auto refuse = [&](std::string why) -> Status {
    ++stats_.refused_descriptors;
    Metrics().refused.Add(1);
    return Status::Corruption("shared-memory descriptor refused: " + why);
  };
  Reader r(frame);
  const uint32_t kind = r.U32();
  const uint32_t version = r.U32();
  const uint64_t nonce = r.U64();
  const uint32_t n = r.U32();
  if (!r.ok() || (kind != kData && kind != kStreamedData) || version != kShmVersion) return refuse("not a DATA frame");
  if (n > kMaxPayloadFrames) return refuse(std::to_string(n) + " payloads");
  Channel* c = Find(peer);
  if (c == nullptr || !c->rx) return refuse("no shared-memory channel with this peer");
  const bool streamed = kind == kStreamedData;
  if (streamed && !c->rx_streams) return refuse("a streamed payload on a channel that was not offered streams");
  streams->clear();
  if (nonce != c->rx_nonce) return refuse("it names another arena (a stale channel)");
  std::vector<Buffer> out;
  out.reserve(n);
  size_t next_tcp = 0;
  uint64_t shm_bytes = 0, tcp_bytes = 0;
  for (uint32_t i = 0; i < n; ++i) {
    ShmSlotRef ref{r.U64(), r.U64(), r.U64()};
    if (!r.ok()) return refuse("truncated");
    if (ref.token == 0) {
      if (next_tcp >= tcp_frames.size()) return refuse("more TCP payloads named than frames received");
      tcp_bytes += tcp_frames[next_tcp].size();
      out.push_back(std::move(tcp_frames[next_tcp++]));
      if (streamed) streams->push_back(nullptr);
      continue;
    }
    const uint64_t* progress = nullptr;
    Result<Buffer> b = c->rx->Claim(ref, &progress);
    if (!b.ok()) return refuse(b.status().message());
    shm_bytes += ref.length;
    if (streamed) {
      streams->push_back(std::make_shared<const ShmStream>(progress, *b, c->rx));
      ++stats_.streamed_payloads_received;
      Metrics().streamed_received.Add(1);
    }
    out.push_back(std::move(b).value());
  }
  if (!r.at_end()) return refuse("trailing bytes");
  if (next_tcp != tcp_frames.size()) return refuse("payload frames not named by the descriptor");
  stats_.shm_payloads_received += n - next_tcp;
  stats_.shm_bytes_received += shm_bytes;
  Metrics().bytes_received.Add(shm_bytes);
  stats_.tcp_payloads_received += next_tcp;
  stats_.tcp_bytes_received += tcp_bytes;
  return out;
}

void ShmTransport::CountTcpReceived(const std::vector<Buffer>& payloads) {
  for (const Buffer& b : payloads) {
    ++stats_.tcp_payloads_received;
    stats_.tcp_bytes_received += b.size();
  }
}

uint64_t ShmTransport::TEST_tx_nonce(std::string_view peer) const {
  if (!router_) return dealer_.tx_nonce;
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.tx_nonce;
}

bool ShmTransport::streams(std::string_view peer) const {
  if (!router_) return dealer_.tx_streams && dealer_.off_reason.empty();
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.tx_streams;
}

bool ShmTransport::receives_streams(std::string_view peer) const {
  if (!router_) return dealer_.rx_streams && dealer_.off_reason.empty();
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.rx_streams;
}

std::string ShmTransport::ChannelState(std::string_view peer) const {
  if (!enabled_) return "off: --shm=off";
  const Channel* c = nullptr;
  if (!router_) {
    c = &dealer_;
  } else if (auto it = peers_.find(peer); it != peers_.end()) {
    c = &it->second;
  }
  if (c == nullptr) return "pending";
  if (!c->off_reason.empty()) return "off: " + c->off_reason;
  if (c->tx_ready && c->rx) return "on";
  return "pending";
}

}  // namespace tessera::wire
