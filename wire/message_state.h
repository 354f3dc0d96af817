// The heap state behind OutMessage and InMessage (wire/message.h), shared by message.cc
// and codec.cc only, and the per-thread caches those states come from.
//
// Thread safety: a State belongs to its message; the caches are thread-local
// (wire/thread_cache.h).
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wire/message.h"
#include "wire/thread_cache.h"

namespace tessera::wire {

struct OutMessage::State {
  // Data-plane headers are ~30 words; bigger ones (shard maps, errors with long text) grow
  // the builder into heap segments and are flattened by copy instead.
  static constexpr unsigned kFirstWords = 64;
  // words[0] is room for the one-segment table, words[1..] the builder's first segment:
  // EncodedHeader hands out words[0 .. 1 + used] without a copy. Zero, as
  // MallocMessageBuilder requires of a first segment (its destructor re-zeroes what it used).
  alignas(8) uint64_t words[1 + kFirstWords] = {};
  std::optional<::capnp::MallocMessageBuilder> builder;
  Header::Builder root{nullptr};
  std::vector<Payload> payloads;  // capacity kept across reuse
  std::vector<std::byte> flat;    // a multi-segment header's encoding

  kj::ArrayPtr<::capnp::word> first() { return {reinterpret_cast<::capnp::word*>(words + 1), kFirstWords}; }
  static void Reset(State& s) {
    s.root = Header::Builder(nullptr);
    s.builder.reset();
    s.payloads.clear();
    s.flat.clear();
  }
};

struct InMessage::State {
  std::string routing_id;
  Buffer header_frame;  // word-aligned header bytes (the frame itself, or an aligned copy)
  std::optional<::capnp::FlatArrayMessageReader> reader;  // over header_frame
  Header::Reader header;                                  // from reader
  std::vector<Buffer> payloads;  // capacity kept across reuse
  // Each payload's description, copied at decode: reading it through the header walked
  // the payload list's pointer on every call (~250 instructions).
  struct Desc {
    DType dtype;
    uint64_t elements;
  };
  std::array<Desc, kMaxPayloadFrames> descs;
  uint64_t total_bytes = 0;
  std::vector<std::shared_ptr<const ShmStream>> streams;  // empty, or one per payload

  static void Reset(State& s) {
    s.header = Header::Reader();
    s.reader.reset();  // before the bytes it reads
    s.header_frame = Buffer();
    s.routing_id.clear();
    s.payloads.clear();
    s.streams.clear();
    s.total_bytes = 0;
  }
};

using OutStateCache = ThreadCache<OutMessage::State, 4>;
using InStateCache = ThreadCache<InMessage::State, 4>;

}  // namespace tessera::wire
