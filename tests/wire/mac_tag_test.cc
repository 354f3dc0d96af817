// The --auth=mac tag is the AEAD tag of the chosen primitive with no plaintext and, as
// associated data, seq then each frame's length and bytes (little-endian 64-bit words;
// wire/mac_auth.h). FrameMac::Compute gathers small pieces into fewer updates; this pins
// its tags to that definition, computed here from one contiguous copy in one update.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "wire/mac_auth.h"

namespace tessera::wire {
namespace {

void PutU64(uint64_t v, std::vector<uint8_t>* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// The definition: one AEAD session, nonce = seq (LE) padded to 12 bytes, all associated
// data in one update, the tag read after Final.
MacTag Reference(MacPrimitive p, const MacKey& key, uint64_t seq, const std::vector<std::vector<std::byte>>& frames) {
  std::vector<uint8_t> ad;
  PutU64(seq, &ad);
  for (const auto& f : frames) {
    PutU64(f.size(), &ad);
    for (std::byte b : f) ad.push_back(static_cast<uint8_t>(b));
  }
  std::vector<uint8_t> iv;
  PutU64(seq, &iv);
  iv.resize(12, 0);
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  const EVP_CIPHER* cipher = p == MacPrimitive::kGmac ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
  int len = 0;
  uint8_t none[16];
  MacTag tag{};
  EXPECT_EQ(EVP_EncryptInit_ex(c, cipher, nullptr, key.data(), iv.data()), 1);
  EXPECT_EQ(EVP_EncryptUpdate(c, nullptr, &len, ad.data(), static_cast<int>(ad.size())), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(c, none, &len), 1);
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag.data()), 1);
  EVP_CIPHER_CTX_free(c);
  return tag;
}

// Frame sizes around the gathering's edges (256-byte frames inline, a 512-byte buffer)
// and a request's shape (a header of ~100 bytes, a 4 KiB payload), in lists of 0 to 40
// frames so the buffer also fills with length words alone.
TEST(MacTag, EveryFrameListGivesTheDefinitionsTag) {
  MacKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(3 * i + 1);
  const std::vector<size_t> sizes = {0, 1, 7, 8, 15, 16, 17, 96, 255, 256, 257, 400, 496, 497, 504, 505, 511, 512, 513, 4096};
  std::mt19937_64 rng(17);
  for (MacPrimitive p : {MacPrimitive::kPoly1305, MacPrimitive::kGmac}) {
    auto mac = FrameMac::Create(p, key);
    ASSERT_TRUE(mac.ok()) << mac.status().ToString();
    uint64_t seq = 0;
    for (int trial = 0; trial < 400; ++trial) {
      const size_t count = trial < 40 ? static_cast<size_t>(trial) : rng() % 6;
      std::vector<std::vector<std::byte>> frames(count);
      for (auto& f : frames) {
        f.resize(trial < 40 && trial % 2 == 0 ? 0 : sizes[rng() % sizes.size()]);
        for (auto& b : f) b = static_cast<std::byte>(rng());
      }
      std::vector<std::span<const std::byte>> spans(frames.begin(), frames.end());
      seq += 1 + rng() % 1000;
      auto got = (*mac)->Compute(seq, spans);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(*got, Reference(p, key, seq, frames))
          << MacPrimitiveName(p) << ", trial " << trial << ", " << count << " frames";
    }
  }
}

}  // namespace
}  // namespace tessera::wire
