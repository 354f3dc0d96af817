// What process_test and wire_peer agree on: the peer pushes Pattern(n) as f32 values;
// the test answers with every byte XOR kReplyMask; the peer checks every byte.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tessera::wire::testing {

inline constexpr std::byte kReplyMask{0xa5};
inline std::byte PeerByte(size_t i) { return static_cast<std::byte>((i * 131 + 17) & 0xff); }

// Exit codes of wire_peer.
inline constexpr int kPeerOk = 0;
inline constexpr int kPeerBadArgs = 2;
inline constexpr int kPeerCallFailed = 3;
inline constexpr int kPeerMismatch = 4;
inline constexpr int kPeerWrongPath = 5;  // shm_peer: the bytes took the other path

}  // namespace tessera::wire::testing
