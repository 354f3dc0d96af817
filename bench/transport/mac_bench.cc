// bench_mac: the candidate tag primitives for --auth=mac on this CPU, against memcpy of
// the same bytes in the same run (docs/benchmarks-auth.md, "Authentication cost"). Prints one
// markdown table; every cell is the best of --repeats runs of at least --min_time_ms.
//
//   wire::FrameMac Poly1305  OpenSSL chacha20-poly1305, frames as associated data (used)
//   wire::FrameMac GMAC      OpenSSL AES-256-GCM, frames as associated data
//   HMAC-SHA256              OpenSSL one-shot HMAC()
//   libsodium AES-256-GCM    crypto_aead_aes256gcm_encrypt_detached, data as AD (if built)
//   libsodium Poly1305       crypto_onetimeauth (if built)
//   Nettle UMAC-64/-128      umac64/umac128 (if built): the universal-hash MAC designed to
//                            beat Poly1305 on wide multipliers; measured to see whether it does
#include <gflags/gflags.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#ifdef TESSERA_BENCH_SODIUM
#include <sodium.h>
#endif
#ifdef TESSERA_BENCH_NETTLE
#include <nettle/umac.h>
#endif

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "wire/mac_auth.h"

DEFINE_int32(min_time_ms, 300, "minimum measuring time per cell");
DEFINE_int32(repeats, 3, "runs per cell; the best is reported");

namespace {

using namespace tessera;
using namespace tessera::wire;

// GB/s of `f` over `bytes`, best of the repeats.
double Rate(size_t bytes, const std::function<void()>& f) {
  double best = 0;
  for (int r = 0; r < FLAGS_repeats; ++r) {
    const auto t0 = Clock::now();
    int64_t n = 0;
    do {
      f();
      ++n;
    } while (Clock::now() - t0 < std::chrono::milliseconds(FLAGS_min_time_ms));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) * static_cast<double>(n) / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  std::string why;
  auto chosen = PreferredMacPrimitive(&why);
  if (!chosen.ok()) {
    std::fprintf(stderr, "bench_mac: %s\n", chosen.status().ToString().c_str());
    return 2;
  }
  std::printf("chosen by this CPU's flags: %s (%s)\n\n", std::string(MacPrimitiveName(*chosen)).c_str(), why.c_str());
  MacKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  auto poly = FrameMac::Create(MacPrimitive::kPoly1305, key);
  auto gmac = FrameMac::Create(MacPrimitive::kGmac, key);
  if (!poly.ok() || !gmac.ok()) {
    std::fprintf(stderr, "bench_mac: cannot create the MACs\n");
    return 1;
  }
#ifdef TESSERA_BENCH_SODIUM
  if (sodium_init() < 0) return 1;
  const bool sodium_gcm = crypto_aead_aes256gcm_is_available() != 0;
#endif
  std::printf("| bytes | memcpy GB/s | Poly1305 (OpenSSL) GB/s | GMAC (OpenSSL) GB/s | HMAC-SHA256 GB/s |"
#ifdef TESSERA_BENCH_SODIUM
              " libsodium AES-256-GCM GB/s | libsodium Poly1305 GB/s |"
#endif
#ifdef TESSERA_BENCH_NETTLE
              " Nettle UMAC-64 GB/s | Nettle UMAC-128 GB/s |"
#endif
              " Poly1305 / memcpy |\n|---|---|---|---|---|"
#ifdef TESSERA_BENCH_SODIUM
              "---|---|"
#endif
#ifdef TESSERA_BENCH_NETTLE
              "---|---|"
#endif
              "---|\n");
  uint64_t seq = 0;
  // Per tag as a 4 KiB request or reply is tagged: a header frame and a 4 KiB payload
  // (the header's size varies by a few words; 128 bytes here). The per-tag set-up, not the
  // hashing, is what differs between call sequences (docs/benchmarks-transport-server.md).
  {
    std::vector<std::byte> header(128, std::byte{3}), payload(4096, std::byte{7});
    const std::vector<std::span<const std::byte>> frames{std::span<const std::byte>(header),
                                                         std::span<const std::byte>(payload)};
    const size_t bytes = header.size() + payload.size();
    const double p = Rate(bytes, [&] { (void)(*poly)->Compute(++seq, frames); });
    const double g = Rate(bytes, [&] { (void)(*gmac)->Compute(++seq, frames); });
    std::printf("per tag, 128 B header + 4 KiB payload: Poly1305 %.0f ns, GMAC %.0f ns\n\n",
                static_cast<double>(bytes) / p, static_cast<double>(bytes) / g);
  }
  for (size_t bytes : {size_t{4096}, size_t{1} << 20, size_t{64} << 20}) {
    std::vector<std::byte> data(bytes, std::byte{7}), dst(bytes);
    std::vector<std::span<const std::byte>> frames{std::span<const std::byte>(data)};
    const double mc = Rate(bytes, [&] {
      std::memcpy(dst.data(), data.data(), bytes);
      dst[seq++ % bytes] = std::byte{1};
    });
    const double p = Rate(bytes, [&] { (void)(*poly)->Compute(++seq, frames); });
    const double g = Rate(bytes, [&] { (void)(*gmac)->Compute(++seq, frames); });
    const double h = Rate(bytes, [&] {
      uint8_t out[32];
      unsigned int len = 0;
      HMAC(EVP_sha256(), key.data(), 32, reinterpret_cast<const uint8_t*>(data.data()), bytes, out, &len);
    });
    std::printf("| %zu | %.2f | %.2f | %.2f | %.2f |", bytes, mc, p, g, h);
#ifdef TESSERA_BENCH_SODIUM
    uint8_t npub[12] = {}, tag[16];
    const double sg = !sodium_gcm ? 0 : Rate(bytes, [&] {
      unsigned long long ml = 0;
      ++npub[0];
      uint8_t none[1];  // no plaintext, so nothing is written here
      crypto_aead_aes256gcm_encrypt_detached(none, tag, &ml, nullptr, 0, reinterpret_cast<const uint8_t*>(data.data()),
                                             bytes, nullptr, npub, key.data());
    });
    const double so = Rate(bytes, [&] {
      crypto_onetimeauth(tag, reinterpret_cast<const uint8_t*>(data.data()), bytes, key.data());
    });
    std::printf(" %.2f | %.2f |", sg, so);
#endif
#ifdef TESSERA_BENCH_NETTLE
    // Key set-up per message, as a per-connection key with a per-message nonce would need
    // it only once: the context is keyed once and re-nonced each call, like FrameMac.
    uint8_t nonce[16] = {};
    umac64_ctx u64;
    umac128_ctx u128;
    umac64_set_key(&u64, key.data());
    umac128_set_key(&u128, key.data());
    const auto* in = reinterpret_cast<const uint8_t*>(data.data());
    const double n64 = Rate(bytes, [&] {
      uint8_t t[8];
      ++nonce[0];
      umac64_set_nonce(&u64, sizeof nonce, nonce);
      umac64_update(&u64, bytes, in);
      umac64_digest(&u64, sizeof t, t);
    });
    const double n128 = Rate(bytes, [&] {
      uint8_t t[16];
      ++nonce[0];
      umac128_set_nonce(&u128, sizeof nonce, nonce);
      umac128_update(&u128, bytes, in);
      umac128_digest(&u128, sizeof t, t);
    });
    std::printf(" %.2f | %.2f |", n64, n128);
#endif
    std::printf(" %.2f |\n", p / mc);
  }
  return 0;
}
