#include "wire/mac_auth.h"

#include <gflags/gflags.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>
#include <vector>

DEFINE_string(mac_primitive, "auto",
              "--auth=mac tag primitive a connecting socket proposes: auto (the fastest on this CPU), "
              "poly1305 or gmac (servers accept either)");

namespace tessera::wire {

namespace {

constexpr char kJobKeyLabel[] = "tessera/auth=mac/job-key/v1";

const EVP_CIPHER* CipherOf(MacPrimitive p) {
  return p == MacPrimitive::kGmac ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

// OpenSSL's vector ChaCha20/Poly1305 code (AVX2/AVX-512) can return with the upper halves
// of the vector registers dirty. Until a VZEROUPPER, every legacy-SSE instruction the thread
// runs afterwards (all of Tessera's kernels: they are built for baseline x86-64) pays for
// merging those halves: measured on Zen 4, the server's SGD pass over 1 MiB took 181 us
// after a tag against 30 us without one, and a same-host push+pull 1.7x the time of
// --auth=none (docs/benchmarks-auth.md, "Authentication cost"). One VZEROUPPER per tag clears it.
void ClearUpperVectorState() {
#if defined(__x86_64__)
  static const bool avx = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") != 0;
  }();
  // Keeps the low 128 bits of every register, all the compiler uses outside VEX code.
  if (avx) asm volatile("vzeroupper" ::: "memory");
#endif
}

void PutU64(uint64_t v, uint8_t out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

std::string_view MacPrimitiveName(MacPrimitive p) {
  switch (p) {
    case MacPrimitive::kPoly1305:
      return "Poly1305";
    case MacPrimitive::kGmac:
      return "AES-256-GMAC";
  }
  return "?";
}

bool IsKnownMacPrimitive(uint8_t p) {
  return p == static_cast<uint8_t>(MacPrimitive::kPoly1305) || p == static_cast<uint8_t>(MacPrimitive::kGmac);
}

Result<MacPrimitive> PreferredMacPrimitive(std::string* why) {
  if (FLAGS_mac_primitive == "poly1305" || FLAGS_mac_primitive == "gmac") {
    *why = "--mac_primitive=" + FLAGS_mac_primitive;
    return FLAGS_mac_primitive == "gmac" ? MacPrimitive::kGmac : MacPrimitive::kPoly1305;
  }
  if (FLAGS_mac_primitive != "auto") {
    return Status::InvalidArgument("--mac_primitive=" + FLAGS_mac_primitive + ": expected auto, poly1305 or gmac");
  }
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool aes = __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
  // OpenSSL 3.0 hashes GCM's associated data with 128-bit PCLMULQDQ (VAES and VPCLMULQDQ
  // serve only its encryption path), while its Poly1305 has AVX2 and AVX-512 code: on
  // Zen 4 Poly1305 measured ~1.3-1.6x faster (docs/benchmarks-auth.md). GMAC wins only where
  // AES-NI exists without AVX2.
  if (avx512 || avx2) {
    *why = avx512 ? "AVX-512F: OpenSSL's vector Poly1305 beats its PCLMULQDQ GHASH" : "AVX2: vector Poly1305";
    return MacPrimitive::kPoly1305;
  }
  if (aes) {
    *why = "AES-NI+PCLMULQDQ without AVX2";
    return MacPrimitive::kGmac;
  }
  *why = "no AES-NI: portable Poly1305";
  return MacPrimitive::kPoly1305;
}

MacKey HmacParts(const MacKey& key, std::string_view label,
                 std::initializer_list<std::span<const uint8_t>> parts) {
  // Handshake inputs are a few hundred bytes: one buffer and the one-shot HMAC().
  std::vector<uint8_t> in(label.begin(), label.end());
  for (auto p : parts) in.insert(in.end(), p.begin(), p.end());
  MacKey out{};
  unsigned int len = 0;
  // HMAC() fails only on allocation failure; the zero key then fails every handshake.
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), in.data(), in.size(), out.data(), &len) == nullptr) {
    out.fill(0);
  }
  ClearUpperVectorState();
  return out;
}

MacKey DeriveJobMacKey(std::span<const uint8_t> secret) {
  MacKey k{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const uint8_t*>(kJobKeyLabel),
       sizeof(kJobKeyLabel) - 1, k.data(), &len);
  ClearUpperVectorState();
  return k;
}

bool TagsEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::unique_ptr<FrameMac>> FrameMac::Create(MacPrimitive primitive, const MacKey& key) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (c == nullptr) return Status::Internal("EVP_CIPHER_CTX_new failed");
  // Keyed once: the key schedule is not redone per message.
  if (EVP_EncryptInit_ex(c, CipherOf(primitive), nullptr, key.data(), nullptr) != 1) {
    EVP_CIPHER_CTX_free(c);
    return Status::Internal("EVP_EncryptInit_ex failed for " + std::string(MacPrimitiveName(primitive)));
  }
  return std::unique_ptr<FrameMac>(new FrameMac(primitive, c));
}

FrameMac::~FrameMac() { EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_)); }

Result<MacTag> FrameMac::Compute(uint64_t seq, std::span<const std::span<const std::byte>> frames) {
  auto* c = static_cast<EVP_CIPHER_CTX*>(ctx_);
  uint8_t iv[12] = {};
  PutU64(seq, iv);
  int len = 0;
  if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, iv) != 1) return Status::Internal("MAC: setting the IV failed");
  // The tagged bytes are seq, then each frame's length and bytes. Associated data may be
  // fed in any split with the same tag, so the 8-byte words and the frames of up to
  // kInlineFrame bytes (the header) are gathered into one update: each EVP_EncryptUpdate
  // costs ~200 instructions of dispatch beside the bytes' own, and a request's tag took
  // five (docs/benchmarks-transport-server.md).
  constexpr size_t kInlineFrame = 256;
  uint8_t gather[512];
  size_t used = 0;
  bool ok = true;
  const auto feed = [&](const uint8_t* p, size_t n) {
    // EVP lengths are int: feed large frames in pieces.
    for (size_t off = 0; ok && off < n;) {
      const size_t k = std::min<size_t>(n - off, size_t{1} << 30);
      ok = EVP_EncryptUpdate(c, nullptr, &len, p + off, static_cast<int>(k)) == 1;
      off += k;
    }
  };
  const auto flush = [&] {
    feed(gather, used);
    used = 0;
  };
  PutU64(seq, gather);
  used = 8;
  for (auto f : frames) {
    if (used + 8 > sizeof(gather)) flush();
    PutU64(f.size(), gather + used);
    used += 8;
    const auto* bytes = reinterpret_cast<const uint8_t*>(f.data());
    if (f.size() <= kInlineFrame && used + f.size() <= sizeof(gather)) {
      if (!f.empty()) std::memcpy(gather + used, bytes, f.size());
      used += f.size();
    } else {
      flush();
      feed(bytes, f.size());
    }
  }
  flush();
  uint8_t none[16];
  ok = ok && EVP_EncryptFinal_ex(c, none, &len) == 1;
  MacTag tag{};
  ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kMacTagBytes), tag.data()) == 1;
  ClearUpperVectorState();
  if (!ok) return Status::Internal("MAC: OpenSSL failed to compute a tag");
  return tag;
}

}  // namespace tessera::wire
