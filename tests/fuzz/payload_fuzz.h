// The payload fuzzer's world and input format, shared with its seed generator.
//
// World: a 2-server, 2-worker shard map (dense "d" of 1000 f32 in 256-byte chunks with
// Adam, sparse "s" of width 3 with AdaGrad, --sync from the input); the fuzzer drives
// server 0's ParamServerCore exactly as the server loop does.
//
// Input:
//   byte 0        bits 0-2 = number of payload frames k (0-7); bit 3 = bsp (else asp)
//   4*k bytes     frame sizes, little-endian uint32, each taken modulo 16 KiB
//   2 bytes       header length h, little-endian
//   h bytes       the header frame
//   the rest      payload bytes, frame after frame (zero-filled where the input ends)
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "common/param_spec.h"
#include "common/cluster/shard_map.h"

namespace tessera::fuzz {

inline constexpr uint64_t kPayloadJobId = 0x5eed;
inline constexpr uint32_t kMaxPayloadFrame = 1u << 14;
inline constexpr int kServers = 2;

inline Result<ShardMap> PayloadFuzzMap(bool bsp) {
  ShardMapOptions o;
  o.version = 7;
  o.chunk_bytes = 256;
  o.num_workers = 2;
  o.sync = bsp ? SyncPolicy{SyncMode::kBsp, 0} : SyncPolicy{SyncMode::kAsp, 0};
  ParamSpec d;
  d.name = "d";
  d.shape = {1000};
  d.init = InitKind::kConstant;
  d.init_scale = 0.5f;
  d.optimizer.kind = OptimizerKind::kAdam;
  ParamSpec s = d;
  s.name = "s";
  s.kind = ParamKind::kSparse;
  s.shape = {3};
  s.optimizer.kind = OptimizerKind::kAdaGrad;
  std::vector<ServerEndpoint> servers = {{1, "tcp://127.0.0.1:1"}, {2, "tcp://127.0.0.1:2"}};
  return ShardMap::Build(o, servers, {d, s});
}

struct PayloadInput {
  bool bsp = false;
  std::vector<uint32_t> sizes;
  std::span<const uint8_t> header;
  std::span<const uint8_t> rest;
};

inline PayloadInput ParsePayloadInput(const uint8_t* data, size_t size) {
  PayloadInput in;
  if (size == 0) return in;
  in.bsp = (data[0] & 0x08) != 0;
  size_t pos = 1;
  const size_t k = data[0] & 0x07;
  for (size_t i = 0; i < k && pos + 4 <= size; ++i, pos += 4) {
    uint32_t v;
    std::memcpy(&v, data + pos, 4);
    in.sizes.push_back(v % kMaxPayloadFrame);
  }
  uint16_t h = 0;
  if (pos + 2 <= size) {
    std::memcpy(&h, data + pos, 2);
    pos += 2;
  }
  const size_t hl = std::min<size_t>(h, size - pos);
  in.header = {data + pos, hl};
  in.rest = {data + pos + hl, size - pos - hl};
  return in;
}

inline std::vector<uint8_t> MakePayloadInput(bool bsp, const std::vector<std::span<const std::byte>>& frames,
                                             std::span<const std::byte> header) {
  std::vector<uint8_t> out;
  out.push_back(static_cast<uint8_t>((frames.size() & 0x07) | (bsp ? 0x08 : 0)));
  for (const auto& f : frames) {
    const uint32_t s = static_cast<uint32_t>(f.size());
    uint8_t b[4];
    std::memcpy(b, &s, 4);
    out.insert(out.end(), b, b + 4);
  }
  const uint16_t h = static_cast<uint16_t>(header.size());
  out.push_back(static_cast<uint8_t>(h & 0xff));
  out.push_back(static_cast<uint8_t>(h >> 8));
  const auto* hp = reinterpret_cast<const uint8_t*>(header.data());
  out.insert(out.end(), hp, hp + header.size());
  for (const auto& f : frames) {
    const auto* p = reinterpret_cast<const uint8_t*>(f.data());
    out.insert(out.end(), p, p + f.size());
  }
  return out;
}

}  // namespace tessera::fuzz
