// The header fuzzer's input format, shared with the seed generator:
//   byte 0        options: bits 0-4 = number of payload frames k (up to 31, so more than
//                 kMaxPayloadFrames is reachable); bit 5 = expect job kSampleJobId;
//                 bit 6 = max_message_bytes 4096
//   4*k bytes     frame sizes, little-endian uint32, each taken modulo 64 KiB
//   the rest      the header frame
// Payload frames are filled with a fixed pattern: the codec checks sizes, not contents.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace tessera::wire::fuzz {

inline constexpr uint8_t kFramesMask = 0x1f;
inline constexpr uint8_t kExpectJobBit = 0x20;
inline constexpr uint8_t kSmallLimitBit = 0x40;
inline constexpr uint32_t kMaxFrameBytes = 1u << 16;

struct FuzzInput {
  uint8_t options = 0;
  std::vector<uint32_t> frame_sizes;
  std::span<const std::byte> header;
};

inline FuzzInput ParseFuzzInput(const uint8_t* data, size_t size) {
  FuzzInput in;
  if (size == 0) return in;
  in.options = data[0];
  size_t pos = 1;
  const size_t k = in.options & kFramesMask;
  for (size_t i = 0; i < k && pos + 4 <= size; ++i, pos += 4) {
    uint32_t v;
    std::memcpy(&v, data + pos, 4);
    in.frame_sizes.push_back(v % kMaxFrameBytes);
  }
  in.header = {reinterpret_cast<const std::byte*>(data) + pos, size - pos};
  return in;
}

inline std::vector<uint8_t> MakeFuzzInput(uint8_t flags, const std::vector<uint32_t>& sizes,
                                          std::span<const std::byte> header) {
  std::vector<uint8_t> out;
  out.push_back(static_cast<uint8_t>((sizes.size() & kFramesMask) | flags));
  for (uint32_t s : sizes) {
    uint8_t b[4];
    std::memcpy(b, &s, 4);
    out.insert(out.end(), b, b + 4);
  }
  const auto* h = reinterpret_cast<const uint8_t*>(header.data());
  out.insert(out.end(), h, h + header.size());
  return out;
}

}  // namespace tessera::wire::fuzz
