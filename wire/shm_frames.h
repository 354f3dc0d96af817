// The bytes of the shared-memory transport frames (docs/wire_format.md, "Same-host
// shared memory"): OFFER / ACCEPT / CONFIRM / REFUSE / DATA, little-endian, after an
// 8-byte magic that no Cap'n Proto header can start with. ShmTransport (shm_channel.h)
// builds and reads them; nothing here trusts a length it has not checked.
//
// Thread safety: values and pure functions; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "wire/shm_arena.h"

namespace tessera::wire {

// True when `frame` is a transport frame (not a Cap'n Proto header).
bool IsShmFrame(std::span<const std::byte> frame);

// The DATA frame: arena `nonce`, then one entry per payload (token 0: the payload is the
// next TCP frame). `streamed`: a STREAMED_DATA frame instead, whose shared-memory
// payloads may still be being written (wire/shm_stream.h). Exposed for tests that forge
// descriptors.
std::vector<std::byte> EncodeShmDataFrame(uint64_t nonce, const std::vector<ShmSlotRef>& refs,
                                          bool streamed = false);

namespace shm {

// 0xFFFFFFFF "TSHM": no Cap'n Proto message starts with a segment count of 2^32.
inline constexpr unsigned char kMagic[8] = {0xFF, 0xFF, 0xFF, 0xFF, 'T', 'S', 'H', 'M'};
inline constexpr uint32_t kShmVersion = 1;
enum Kind : uint8_t {
  kOffer = 1,
  kAccept = 2,
  kConfirm = 3,  // body: optional u32 capabilities (kCapStreams); older DEALERs send none
  kRefuse = 4,
  kData = 5,
  kStreamOk = 6,      // ROUTER -> DEALER: STREAMED_DATA frames are welcome on this channel
  kStreamedData = 7,  // DATA whose shared-memory payloads publish progress
  // The local link's set-up (wire/local_link.h); handled by Socket, never by ShmTransport.
  kLinkOffer = 8,    // ROUTER -> DEALER: Str(abstract socket name), 16-byte nonce
  kLinkHello = 9,    // DEALER -> ROUTER: connected and wrote the nonce
  kLinkSwitch = 10,  // either way: the sender's last message on ZeroMQ
  kLinkRefuse = 11,  // ROUTER -> DEALER: Str(why); stay on ZeroMQ
};
// True when `frame` is a transport frame of the local link's set-up.
bool IsLinkFrame(std::span<const std::byte> frame);
// CONFIRM capabilities: this DEALER understands STREAM_OK and can send STREAMED_DATA
// (kCapStreams); it takes STREAMED_DATA replies (kCapTakesStreams).
inline constexpr uint32_t kCapStreams = 1;
inline constexpr uint32_t kCapTakesStreams = 2;

class Writer {
 public:
  explicit Writer(Kind k) {
    Bytes(kMagic, sizeof(kMagic));
    U32(k);
    U32(kShmVersion);
  }
  void U32(uint32_t v) { Bytes(&v, sizeof(v)); }
  void U64(uint64_t v) { Bytes(&v, sizeof(v)); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  std::vector<std::byte> Take() { return std::move(out_); }

 private:
  void Bytes(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<std::byte> out_;
};

// Bounds-checked: every read of a short or garbled frame sets ok() false and yields 0.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> f) : f_(f), pos_(sizeof(kMagic)) {}
  uint32_t U32() { return Get<uint32_t>(); }
  uint64_t U64() { return Get<uint64_t>(); }
  std::string Str(size_t max) {
    const uint32_t n = U32();
    if (!ok_ || n > max || f_.size() - pos_ < n) {
      ok_ = false;
      return "";
    }
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == f_.size(); }

 private:
  template <typename T>
  T Get() {
    T v{};
    if (!ok_ || f_.size() - pos_ < sizeof(T)) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::span<const std::byte> f_;
  size_t pos_;
  bool ok_ = true;
};

// What OFFER and ACCEPT carry: where the sender's arena is and who the sender is.
struct Offer {
  uint32_t pid = 0;
  int32_t fd = -1;
  uint32_t uid = 0;
  uint64_t bytes = 0;
  uint64_t nonce = 0;
  std::string host;
};

// Reads an OFFER/ACCEPT body (after kind and version); false when short or garbled.
bool DecodeOffer(Reader& r, Offer* o);
std::vector<std::byte> EncodeRefuse(const std::string& why);

}  // namespace shm
}  // namespace tessera::wire
