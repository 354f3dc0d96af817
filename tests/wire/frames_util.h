// Test helpers that build raw frames: valid ones from OutMessage, and hand-made headers
// (any field value, including ones OutMessage refuses to produce) straight from a
// Cap'n Proto builder.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <vector>

#include "wire/codec.h"
#include "wire/message.h"

namespace tessera::wire::testing {

using Bytes = std::vector<std::byte>;

struct Frames {
  Bytes header;
  std::vector<Bytes> payloads;
};

inline Frames ToFrames(OutMessage m) {
  Frames f;
  f.header = m.EncodeHeader();
  for (const auto& p : m.payloads()) f.payloads.emplace_back(p.bytes.begin(), p.bytes.end());
  return f;
}

// A header built field by field: starts as a valid, empty heartbeat of kProtocolVersion
// and job kSampleJobId-free (0); `edit` changes whatever the test needs.
inline Bytes RawHeader(const std::function<void(Header::Builder)>& edit) {
  ::capnp::MallocMessageBuilder b;
  Header::Builder h = b.initRoot<Header>();
  h.setProtocolVersion(kProtocolVersion);
  h.setOp(Op::HEARTBEAT);
  h.setStep(-1);
  h.getBody().setNone();
  edit(h);
  kj::Array<::capnp::word> words = ::capnp::messageToFlatArray(b);
  Bytes out(words.asBytes().size());
  std::memcpy(out.data(), words.asBytes().begin(), out.size());
  return out;
}

inline Bytes Pattern(size_t n, unsigned seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return b;
}

inline Result<InMessage> DecodeFrames(const Frames& f, const DecodeOptions& o = {}) {
  std::vector<std::span<const std::byte>> p;
  for (const Bytes& b : f.payloads) p.emplace_back(b);
  return DecodeCopy(f.header, p, o);
}

}  // namespace tessera::wire::testing
