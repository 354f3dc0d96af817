// One input of the payload fuzzer, run through the parameter server's data path: the
// codec (header and payload frames), DecodeDataRequest, ExpandTopKPush, then
// ParamServerCore's Push / PullReady / Pull, in the order the server loop calls them. Shared by payload_fuzzer
// and the regression test that replays the inputs it found (tests/paramserver).
//
// Properties checked (a violation aborts):
//   * nothing crashes, throws or trips ASan/UBSan, whatever the header and payloads;
//   * a refused push changes nothing (the store's digest is unchanged);
//   * a refused request carries a non-empty reason;
//   * an answered pull fills exactly the elements it asked for.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "paramserver/request_decode.h"
#include "tests/fuzz/payload_fuzz.h"
#include "wire/codec.h"

namespace tessera::fuzz {

namespace payload_detail {

inline void Check(bool cond) {
  if (!cond) abort();
}

// The two maps (asp, bsp), built once; each input gets a fresh core so inputs stay
// independent (libFuzzer needs reproducible crashes).
inline const ShardMap& Map(bool bsp) {
  static const auto* maps = [] {
    auto* v = new std::vector<ShardMap>();
    for (bool b : {false, true}) {
      auto map = PayloadFuzzMap(b);
      if (!map.ok()) abort();
      v->push_back(std::move(*map));
    }
    return v;
  }();
  return (*maps)[bsp ? 1 : 0];
}

}  // namespace payload_detail

// Runs one input; aborts when a property is violated. Returns 0.
inline int RunPayloadInput(const uint8_t* data, size_t size) {
  using payload_detail::Check;
  using payload_detail::Map;
  const PayloadInput in = ParsePayloadInput(data, size);
  std::vector<Buffer> frames;
  size_t pos = 0;
  for (uint32_t s : in.sizes) {
    Buffer b = Buffer::Allocate(s);
    const size_t have = pos < in.rest.size() ? std::min<size_t>(s, in.rest.size() - pos) : 0;
    if (have > 0) std::memcpy(b.data(), in.rest.data() + pos, have);
    if (s > have) std::memset(static_cast<std::byte*>(b.data()) + have, 0, s - have);
    pos += s;
    frames.push_back(std::move(b));
  }
  wire::DecodeOptions opts;
  opts.expected_job_id = kPayloadJobId;
  auto msg = wire::Decode("peer", Buffer::CopyOf(std::as_bytes(in.header)), std::move(frames), opts);
  if (!msg.ok()) {
    Check(!msg.status().message().empty());
    return 0;
  }
  if (!wire::IsDataPlaneOp(msg->op())) return 0;
  auto req = paramserver::DecodeDataRequest(*msg, kServers);
  if (!req.ok()) {
    Check(!req.status().message().empty());
    return 0;
  }
  auto core = paramserver::ParamServerCore::Create(Map(in.bsp), 0);
  Check(core.ok());
  if (msg->op() != wire::Op::PULL) {
    const uint64_t before = core->Digest();
    std::vector<float> expanded;  // a top-k push, as the server expands it
    Status st = paramserver::ExpandTopKPush(core->map(), &*req, &expanded);
    if (st.ok()) st = core->Push(req->req, req->values);
    if (!st.ok()) {
      Check(!st.message().empty());
      Check(core->Digest() == before);
      return 0;
    }
  }
  auto ready = core->PullReady(req->req);
  if (!ready.ok() || !*ready) return 0;
  const uint64_t n = req->req.kind == ParamKind::kSparse
                         ? req->req.keys.size() * static_cast<uint64_t>(core->map().param(req->req.param_id)->numel())
                         : req->req.end - req->req.begin;
  Check(n <= (uint64_t{1} << 20));
  std::vector<float> out(n, -12345.0f);
  int64_t applied = -2;
  Status st = core->Pull(req->req, out, &applied);
  if (st.ok()) Check(applied >= -1);
  return 0;
}

}  // namespace tessera::fuzz
