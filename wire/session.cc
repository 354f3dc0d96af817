#include "wire/session.h"

#include <glog/logging.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/clock.h"

namespace tessera::wire {

namespace {

constexpr char kMagic[4] = {'T', 'S', 'A', 'H'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kHello = 1, kWelcome = 2, kRetry = 3;
constexpr size_t kHelloBody = 56;  // HELLO without its tag
constexpr size_t kWelcomeBody = 40;
// A ROUTER keeps at most this many sessions; unused ones go first, then the oldest (its
// peer, if still there, gets a RETRY on its next message and says HELLO again).
constexpr size_t kMaxSessions = 4096;
constexpr int64_t kHelloResendUs = 1000000;

void PutU64(uint64_t v, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetU64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}
void PutI32(int32_t v, uint8_t* out) {
  const auto u = static_cast<uint32_t>(v);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(u >> (8 * i));
}
int32_t GetI32(const uint8_t* in) {
  uint32_t u = 0;
  for (int i = 3; i >= 0; --i) u = (u << 8) | in[i];
  return static_cast<int32_t>(u);
}
const uint8_t* U8(std::span<const std::byte> s) { return reinterpret_cast<const uint8_t*>(s.data()); }
std::span<const uint8_t> U8s(const void* p, size_t n) { return {static_cast<const uint8_t*>(p), n}; }

bool HasHeader(std::span<const std::byte> f, uint8_t type, size_t size) {
  return f.size() == size && std::memcmp(f.data(), kMagic, 4) == 0 && U8(f)[4] == type && U8(f)[5] == kVersion;
}

std::array<uint8_t, kNonceBytes> FreshNonce() {
  std::array<uint8_t, kNonceBytes> n{};
  // RAND_bytes fails only without an entropy source; a CHECK is right there: a repeated
  // nonce would repeat session keys.
  CHECK_EQ(RAND_bytes(n.data(), static_cast<int>(n.size())), 1) << "RAND_bytes failed";
  return n;
}

MacKey WelcomeTag(const MacKey& job, std::span<const uint8_t> hello_body, std::span<const uint8_t> welcome_body) {
  return HmacParts(job, "tessera/auth=mac/welcome", {hello_body, welcome_body});
}

// Session for one side: `client` says which direction we send.
Result<std::unique_ptr<Session>> MakeSession(const MacKey& job, MacPrimitive p, std::span<const uint8_t> hello_body,
                                             std::span<const uint8_t> server_nonce, bool client,
                                             const PeerIdentity& peer) {
  const MacKey c2s = HmacParts(job, "tessera/auth=mac/session/c2s", {hello_body, server_nonce});
  const MacKey s2c = HmacParts(job, "tessera/auth=mac/session/s2c", {hello_body, server_nonce});
  auto s = std::make_unique<Session>();
  TESSERA_ASSIGN_OR_RETURN(s->send, FrameMac::Create(p, client ? c2s : s2c));
  TESSERA_ASSIGN_OR_RETURN(s->recv, FrameMac::Create(p, client ? s2c : c2s));
  s->peer = peer;
  return s;
}

std::string Who(const PeerIdentity& id) {
  return "role " + std::to_string(id.role) + " rank " + std::to_string(id.rank);
}

}  // namespace

std::vector<std::byte> EncodeHello(const MacKey& job_key, MacPrimitive p, const PeerIdentity& id,
                                   const std::array<uint8_t, kNonceBytes>& nonce) {
  std::vector<std::byte> f(kHelloBytes);
  auto* b = reinterpret_cast<uint8_t*>(f.data());
  std::memcpy(b, kMagic, 4);
  b[4] = kHello;
  b[5] = kVersion;
  b[6] = static_cast<uint8_t>(p);
  b[7] = 0;
  PutU64(id.job_id, b + 8);
  PutI32(id.role, b + 16);
  PutI32(id.rank, b + 20);
  std::memcpy(b + 24, nonce.data(), kNonceBytes);
  const MacKey tag = HmacParts(job_key, "tessera/auth=mac/hello", {U8s(b, kHelloBody)});
  std::memcpy(b + kHelloBody, tag.data(), tag.size());
  return f;
}

Result<Hello> ParseHello(const MacKey& job_key, std::span<const std::byte> frame) {
  if (!HasHeader(frame, kHello, kHelloBytes)) return Status::InvalidArgument("not a HELLO of this protocol version");
  const uint8_t* b = U8(frame);
  const MacKey tag = HmacParts(job_key, "tessera/auth=mac/hello", {U8s(b, kHelloBody)});
  if (!TagsEqual(tag, U8s(b + kHelloBody, 32))) {
    return Status::InvalidArgument("HELLO tag does not verify (another job's key, or forged)");
  }
  if (!IsKnownMacPrimitive(b[6])) return Status::InvalidArgument("HELLO names unknown MAC primitive " + std::to_string(b[6]));
  Hello h;
  h.primitive = static_cast<MacPrimitive>(b[6]);
  h.id = PeerIdentity{GetU64(b + 8), GetI32(b + 16), GetI32(b + 20)};
  std::memcpy(h.body.data(), b, kHelloBody);
  return h;
}

MacLink::MacLink(const MacAuthConfig& config, bool router, PeerIdentity self, uint64_t expected_job_id,
                 size_t max_held)
    : config_(config), router_(router), self_(self), expected_job_id_(expected_job_id), max_held_(max_held) {}

std::vector<std::byte> MacLink::StartHandshake() {
  session_.reset();
  pending_hello_ = EncodeHello(config_.job_key, config_.primitive, self_, FreshNonce());
  hello_sent_us_ = NowMicros();
  return pending_hello_;
}

bool MacLink::HandshakeStale() const { return pending() && NowMicros() - hello_sent_us_ > kHelloResendUs; }

Status MacLink::Hold(OutMessage&& msg) {
  if (held_.size() >= max_held_) {
    return Status::ResourceExhausted("authentication handshake with " + endpoint_ + " not finished and " +
                                     std::to_string(held_.size()) + " messages already wait for it");
  }
  held_.push_back(std::move(msg));
  return Status::OK();
}

Session* MacLink::Find(std::string_view routing_id) {
  if (!router_) return established() ? session_.get() : nullptr;
  auto it = sessions_.find(std::string(routing_id));
  return it == sessions_.end() ? nullptr : &it->second;
}

Result<std::array<std::byte, kTrailerBytes>> MacLink::Seal(std::string_view routing_id,
                                                           std::span<const std::span<const std::byte>> frames) {
  Session* s = Find(routing_id);
  if (s == nullptr) return Status::Unavailable("no authenticated session with this peer (--auth=mac)");
  const uint64_t seq = ++s->send_seq;
  TESSERA_ASSIGN_OR_RETURN(MacTag tag, s->send->Compute(seq, frames));
  std::array<std::byte, kTrailerBytes> t;
  PutU64(seq, reinterpret_cast<uint8_t*>(t.data()));
  std::memcpy(t.data() + 8, tag.data(), tag.size());
  return t;
}

MacLink::Incoming MacLink::OnHandshake(std::string_view routing_id, std::span<const std::byte> frame,
                                       const std::string& peer) {
  Incoming in;
  in.verdict = Verdict::kHandshake;
  if (router_) {
    auto hello = ParseHello(config_.job_key, frame);
    if (!hello.ok()) {
      // No answer: a stranger learns nothing, not even that a server is here.
      Refuse(&refusals_.bad_handshake, peer, "refused a HELLO: " + hello.status().message());
      in.verdict = Verdict::kRefused;
      return in;
    }
    if (expected_job_id_ != 0 && hello->id.job_id != 0 && hello->id.job_id != expected_job_id_) {
      Refuse(&refusals_.bad_handshake, peer,
             "refused a HELLO for job " + std::to_string(hello->id.job_id) + " (this is job " +
                 std::to_string(expected_job_id_) + ")");
      in.verdict = Verdict::kRefused;
      return in;
    }
    const auto nonce = FreshNonce();
    std::array<uint8_t, kWelcomeBody> wb{};
    std::memcpy(wb.data(), kMagic, 4);
    wb[4] = kWelcome;
    wb[5] = kVersion;
    wb[6] = static_cast<uint8_t>(hello->primitive);
    std::memcpy(wb.data() + 8, nonce.data(), kNonceBytes);
    auto s = MakeSession(config_.job_key, hello->primitive, hello->body, nonce, /*client=*/false, hello->id);
    if (!s.ok()) {
      Refuse(&refusals_.bad_handshake, peer, "cannot open a session: " + s.status().message());
      in.verdict = Verdict::kRefused;
      return in;
    }
    if (sessions_.size() >= kMaxSessions && sessions_.find(std::string(routing_id)) == sessions_.end()) {
      // Sessions that never carried a message go first (a replayed HELLO opens one that
      // nobody can use), then the oldest.
      auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
        return std::pair(a.second.recv_seq != 0, a.second.opened) < std::pair(b.second.recv_seq != 0, b.second.opened);
      });
      sessions_.erase(oldest);
    }
    (*s)->opened = ++opened_;
    // A re-HELLO replaces the peer's old session (a reconnect, a restarted client).
    sessions_[std::string(routing_id)] = std::move(**s);
    const MacKey tag = WelcomeTag(config_.job_key, hello->body, wb);
    in.reply.resize(kWelcomeBytes);
    std::memcpy(in.reply.data(), wb.data(), kWelcomeBody);
    std::memcpy(in.reply.data() + kWelcomeBody, tag.data(), tag.size());
    return in;
  }
  // DEALER
  if (HasHeader(frame, kRetry, kRetryBytes)) {
    // The server lost our session (it restarted): say HELLO again, unless already doing so.
    if (!pending()) in.reply = StartHandshake();
    return in;
  }
  if (!pending() || !HasHeader(frame, kWelcome, kWelcomeBytes)) {
    Refuse(&refusals_.bad_handshake, peer, pending() ? "unexpected handshake frame" : "WELCOME without a HELLO");
    in.verdict = Verdict::kRefused;
    return in;
  }
  const uint8_t* b = U8(frame);
  std::span<const uint8_t> hello_body(reinterpret_cast<const uint8_t*>(pending_hello_.data()), kHelloBody);
  const MacKey tag = WelcomeTag(config_.job_key, hello_body, U8s(b, kWelcomeBody));
  if (!TagsEqual(tag, U8s(b + kWelcomeBody, 32)) || b[6] != static_cast<uint8_t>(config_.primitive)) {
    Refuse(&refusals_.bad_handshake, peer, "refused a WELCOME whose tag does not verify (not this job's server)");
    in.verdict = Verdict::kRefused;
    return in;
  }
  auto s = MakeSession(config_.job_key, config_.primitive, hello_body, U8s(b + 8, kNonceBytes), /*client=*/true, self_);
  if (!s.ok()) {
    Refuse(&refusals_.bad_handshake, peer, "cannot open a session: " + s.status().message());
    in.verdict = Verdict::kRefused;
    return in;
  }
  session_ = std::move(s).value();
  pending_hello_.clear();
  return in;
}

MacLink::Incoming MacLink::Open(std::string_view routing_id, std::span<const std::span<const std::byte>> frames,
                                std::span<const std::byte> trailer, const std::string& peer) {
  Incoming in;
  Session* s = Find(routing_id);
  if (s == nullptr) {
    Refuse(&refusals_.unknown_session, peer, "refused a message without an authenticated session");
    if (router_) {
      // Constant bytes: tells a legitimate client whose session we lost to say HELLO.
      in.reply.assign(kRetryBytes, std::byte{0});
      std::memcpy(in.reply.data(), kMagic, 4);
      in.reply[4] = std::byte{kRetry};
      in.reply[5] = std::byte{kVersion};
    }
    return in;
  }
  if (trailer.size() != kTrailerBytes) {
    Refuse(&refusals_.bad_tag, peer, "refused a message whose trailer has " + std::to_string(trailer.size()) + " bytes");
    return in;
  }
  const uint64_t seq = GetU64(U8(trailer));
  if (seq <= s->recv_seq) {
    Refuse(&refusals_.replayed, peer,
           "refused a replayed message (sequence " + std::to_string(seq) + ", last " + std::to_string(s->recv_seq) + ")");
    return in;
  }
  auto tag = s->recv->Compute(seq, frames);
  if (!tag.ok() || !TagsEqual(*tag, U8s(U8(trailer) + 8, kMacTagBytes))) {
    Refuse(&refusals_.bad_tag, peer, "refused a message whose tag does not verify (forged or altered)");
    return in;
  }
  s->recv_seq = seq;
  in.verdict = Verdict::kData;
  return in;
}

bool MacLink::IdentityMatches(std::string_view routing_id, int32_t role, int32_t rank, const std::string& peer) {
  if (!router_) return true;
  Session* s = Find(routing_id);
  if (s != nullptr && s->peer.role == role && s->peer.rank == rank) return true;
  Refuse(&refusals_.wrong_identity, peer,
         "refused a message from role " + std::to_string(role) + " rank " + std::to_string(rank) +
             " on a session opened by " + (s ? Who(s->peer) : std::string("nobody")));
  return false;
}

void MacLink::Refuse(uint64_t* counter, const std::string& peer, const std::string& what) {
  ++*counter;
  const int64_t now = NowMicros();
  if (now - last_log_us_ >= 1000000) {
    LOG(WARNING) << "auth=mac: " << what << " from " << (peer.empty() ? std::string("?") : peer) << " (refusal "
                 << refusals_.total()
                 << (suppressed_logs_ ? ", " + std::to_string(suppressed_logs_) + " more since the last line" : "")
                 << ")";
    last_log_us_ = now;
    suppressed_logs_ = 0;
  } else {
    ++suppressed_logs_;
  }
}

}  // namespace tessera::wire
