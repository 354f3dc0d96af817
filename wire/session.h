// --auth=mac sessions: the handshake that opens one per connection and the sealing and
// checking of every message on it (docs/wire_format.md, "Authenticated framing").
//
//   DEALER -> ROUTER  HELLO    client nonce, claimed job id / role / rank, primitive,
//                              HMAC under the job key
//   ROUTER -> DEALER  WELCOME  server nonce, HMAC under the job key over HELLO and it
//   ROUTER -> DEALER  RETRY    "no session for you, say HELLO again" (a restarted server,
//                              an evicted session); constant bytes, no state
//   both ways         data     the message's frames + a trailer frame: sequence number
//                              and a tag under the direction's session key
//
// A handshake message is one frame; a data message is at least two (header + trailer),
// so the two cannot be confused. Session keys: HMAC(job key, direction label, HELLO
// body, server nonce), so they bind the job, the client's identity and both nonces.
//
// Threading: a MacLink belongs to its Socket and is used only by the thread using that
// socket (the Socket is single-threaded). Tags are computed there, never on a ZeroMQ I/O
// thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "wire/mac_auth.h"
#include "wire/message.h"

namespace tessera::wire {

// What Context::EnableMac stores: the job key and the primitive this process proposes.
struct MacAuthConfig {
  MacKey job_key{};
  MacPrimitive primitive = MacPrimitive::kPoly1305;
};

inline constexpr size_t kNonceBytes = 32;
inline constexpr size_t kHelloBytes = 88;
inline constexpr size_t kWelcomeBytes = 72;
inline constexpr size_t kRetryBytes = 8;
inline constexpr size_t kTrailerBytes = 8 + kMacTagBytes;

// Messages refused by a socket's authentication, by reason.
struct AuthRefusals {
  uint64_t bad_tag = 0;          // forged or tampered frames
  uint64_t replayed = 0;         // sequence number not above the last accepted one
  uint64_t unknown_session = 0;  // data without a handshake (or after a server restart)
  uint64_t wrong_identity = 0;   // header's sender differs from the session's identity
  uint64_t bad_handshake = 0;    // HELLO/WELCOME with a wrong tag, job or format
  uint64_t total() const { return bad_tag + replayed + unknown_session + wrong_identity + bad_handshake; }
};

// The identity a HELLO claims (and that its session is bound to).
struct PeerIdentity {
  uint64_t job_id = 0;
  int32_t role = 0;
  int32_t rank = -1;
};

// Handshake frames, exposed for tests and the fuzzer.
std::vector<std::byte> EncodeHello(const MacKey& job_key, MacPrimitive p, const PeerIdentity& id,
                                   const std::array<uint8_t, kNonceBytes>& nonce);
struct Hello {
  MacPrimitive primitive;
  PeerIdentity id;
  std::array<uint8_t, 56> body;  // the tagged part, reused for the WELCOME and key derivation
};
// Checks format and tag; InvalidArgument / Unauthenticated-style errors name what failed.
Result<Hello> ParseHello(const MacKey& job_key, std::span<const std::byte> frame);

// One authenticated connection: keys and sequence numbers for both directions.
struct Session {
  std::unique_ptr<FrameMac> send, recv;
  uint64_t send_seq = 0;
  uint64_t recv_seq = 0;  // last accepted
  PeerIdentity peer;      // ROUTER: the client's identity; DEALER: our own
  uint64_t opened = 0;    // order of creation, for eviction
};

// The socket-side state machine. ROUTER: sessions keyed by routing id. DEALER: one
// session with the one ROUTER it connects to, plus the sends held until WELCOME.
class MacLink {
 public:
  // `self`: the identity a DEALER claims in its HELLO (its stamp_sender role and rank).
  MacLink(const MacAuthConfig& config, bool router, PeerIdentity self, uint64_t expected_job_id, size_t max_held);

  // ---- DEALER
  // A fresh HELLO (new nonce); the link is pending until a matching WELCOME.
  std::vector<std::byte> StartHandshake();
  bool established() const { return session_ != nullptr && pending_hello_.empty(); }
  bool pending() const { return !pending_hello_.empty(); }
  // True when a HELLO has waited over a second: the caller re-sends a fresh one.
  bool HandshakeStale() const;
  // Holds a send until the WELCOME (in order); ResourceExhausted past max_held.
  Status Hold(OutMessage&& msg);
  std::deque<OutMessage> TakeHeld() { return std::exchange(held_, {}); }
  bool held_full() const { return held_.size() >= max_held_; }
  void set_endpoint(std::string e) { endpoint_ = std::move(e); }

  // ---- both
  // The trailer frame for a message to `routing_id` (DEALER: ""): Unavailable when no
  // session exists for it.
  Result<std::array<std::byte, kTrailerBytes>> Seal(std::string_view routing_id,
                                                    std::span<const std::span<const std::byte>> frames);

  enum class Verdict {
    kData,       // authenticated: decode it
    kHandshake,  // consumed; `reply` (if any) goes back to the sender; DEALER: flush
    kRefused,    // counted and logged; drop it
  };
  struct Incoming {
    Verdict verdict = Verdict::kRefused;
    std::vector<std::byte> reply;
  };
  // A one-frame message: HELLO (ROUTER), WELCOME or RETRY (DEALER).
  Incoming OnHandshake(std::string_view routing_id, std::span<const std::byte> frame, const std::string& peer);
  // A data message: `frames` without the trailer, then the trailer.
  Incoming Open(std::string_view routing_id, std::span<const std::span<const std::byte>> frames,
                std::span<const std::byte> trailer, const std::string& peer);
  // ROUTER, after decode: the header's sender must be the session's identity.
  bool IdentityMatches(std::string_view routing_id, int32_t role, int32_t rank, const std::string& peer);

  const AuthRefusals& refusals() const { return refusals_; }
  size_t num_sessions() const { return router_ ? sessions_.size() : (established() ? 1 : 0); }
  // Where a DEALER is connected (for log lines).
  const std::string& endpoint() const { return endpoint_; }

 private:
  Session* Find(std::string_view routing_id);
  void Refuse(uint64_t* counter, const std::string& peer, const std::string& what);

  const MacAuthConfig config_;
  const bool router_;
  const PeerIdentity self_;
  const uint64_t expected_job_id_;
  const size_t max_held_;
  std::unordered_map<std::string, Session> sessions_;  // ROUTER
  uint64_t opened_ = 0;
  std::unique_ptr<Session> session_;  // DEALER
  std::vector<std::byte> pending_hello_;
  int64_t hello_sent_us_ = 0;
  std::deque<OutMessage> held_;
  std::string endpoint_;
  AuthRefusals refusals_;
  int64_t last_log_us_ = 0;
  uint64_t suppressed_logs_ = 0;
};

}  // namespace tessera::wire
