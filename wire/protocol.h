// Protocol constants shared by every peer. Any change to the schema that a peer must
// understand bumps kProtocolVersion; a mismatch is refused with both versions named.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera::wire {

inline constexpr uint32_t kProtocolVersion = 2;

// Cap'n Proto reader limits for a header frame: small on purpose. Headers carry
// descriptions, never bulk data (that travels in raw payload frames).
// The codec's traversal budget for one header is min(this, 2 * header words + 64): an
// honest header is read in about its own size (wire/codec.cc).
inline constexpr uint64_t kHeaderTraversalLimitWords = 1 << 20;  // 8 MiB of header words
inline constexpr int kHeaderNestingLimit = 8;
inline constexpr size_t kMaxHeaderBytes = 1 << 20;  // shard maps of big models fit
inline constexpr size_t kMaxPayloadFrames = 16;
// Default for --max_message_bytes (header + payloads).
inline constexpr uint64_t kDefaultMaxMessageBytes = 1ULL << 30;

}  // namespace tessera::wire
