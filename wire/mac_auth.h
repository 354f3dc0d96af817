// Message authentication for --auth=mac: the job MAC key, the per-session keys and the
// tag over one message's frames (docs/security.md, docs/wire_format.md "Authenticated
// framing").
//
// Keys: the job key is HMAC-SHA256(the key file's 32-byte CURVE secret, a fixed label),
// so --auth=mac and --auth=curve share one key file. Per-connection keys come from the
// job key, both handshake nonces, the client's identity and the direction
// (DeriveSessionKey), so every connection and direction has its own key and a tag is
// bound to the job, the sender and the connection.
//
// Tags: Poly1305 (OpenSSL's chacha20-poly1305 with no plaintext: the frames are the
// associated data) or GMAC (AES-256-GCM, same). The IV is the message's sequence number,
// which never repeats under one key (a session key is used for one direction of one
// connection only, and the sequence number strictly increases).
//
// Threading: FrameMac is not thread-safe; each belongs to one Socket and so to the
// thread that uses that socket (tags are computed on the caller's thread, never on a
// ZeroMQ I/O thread). The free functions are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tessera::wire {

using MacKey = std::array<uint8_t, 32>;
inline constexpr size_t kMacTagBytes = 16;
using MacTag = std::array<uint8_t, kMacTagBytes>;

enum class MacPrimitive : uint8_t { kPoly1305 = 1, kGmac = 2 };

// "Poly1305", "AES-256-GMAC"; "?" for an unknown value.
std::string_view MacPrimitiveName(MacPrimitive p);
bool IsKnownMacPrimitive(uint8_t p);

// The primitive this CPU computes fastest, chosen once from the CPU flags (measured on
// Zen 4 with OpenSSL 3.0: docs/benchmarks-auth.md, "Authentication cost"). *why names the
// flags behind the choice. Overridden by --mac_primitive=poly1305|gmac; InvalidArgument
// for another value than those and auto.
Result<MacPrimitive> PreferredMacPrimitive(std::string* why);

// The job MAC key from the key file's raw 32-byte secret (domain-separated).
MacKey DeriveJobMacKey(std::span<const uint8_t> secret);

// HMAC-SHA256(key, label || part0 || part1 ...). For the handshake and key derivation.
MacKey HmacParts(const MacKey& key, std::string_view label,
                 std::initializer_list<std::span<const uint8_t>> parts);

// Constant-time comparison.
bool TagsEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Computes tags for one direction of one session.
class FrameMac {
 public:
  static Result<std::unique_ptr<FrameMac>> Create(MacPrimitive primitive, const MacKey& key);
  ~FrameMac();
  FrameMac(const FrameMac&) = delete;
  FrameMac& operator=(const FrameMac&) = delete;

  // Tag over seq and every frame (each prefixed by its length, so frame boundaries are
  // covered too). REQUIRES: seq never repeats on this object.
  Result<MacTag> Compute(uint64_t seq, std::span<const std::span<const std::byte>> frames);
  MacPrimitive primitive() const { return primitive_; }

 private:
  FrameMac(MacPrimitive p, void* ctx) : primitive_(p), ctx_(ctx) {}
  const MacPrimitive primitive_;
  void* const ctx_;  // EVP_CIPHER_CTX*, keyed once
};

}  // namespace tessera::wire
