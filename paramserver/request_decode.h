// Turns a decoded data-plane message (push, pull, pushPull) into what ParamServerCore
// takes: a ParamRequest and, for pushes, the gradient values. The codec (wire/codec.h)
// has already checked the header and the frame sizes against their descriptions; this
// checks what only the server cares about (the sender is a worker, a push carries f32
// values) and never reads outside the message's frames.
//
// Thread safety: pure; the result points into `msg`, which must outlive it.
#pragma once

#include <span>
#include <vector>

#include "common/status.h"
#include "paramserver/server_core.h"
#include "wire/message.h"

namespace tessera::paramserver {

struct DataRequest {
  ParamRequest req;                // keys point into msg's first payload frame (sparse)
  std::span<const float> values;   // push / pushPull: the gradient; empty for a pull
  // A top-k dense push (--compress=topk:R on the parameter-server path, docs/wire_format.md):
  // `values` holds only the sent entries and `topk_offsets` their offsets from req.begin
  // (strictly ascending, < end - begin); every other element of [begin, end) is zero.
  bool topk = false;
  std::span<const int32_t> topk_offsets;
  // A pull that also asks for the store's digest (DataRequest.wantDigest; params_digest,
  // docs/training.md): 0 none, 1 Digest(), 2 SparseDigest().
  uint8_t want_digest = 0;
};

// InvalidArgument (naming what is wrong) for a sender that is not a worker, a push
// without values or with values that are not f32, and a top-k push whose offsets (i32)
// are not as many as its values, not strictly ascending or outside [begin, end).
// `num_servers` maps the sender's rank to its worker index (rank - 1 - num_servers).
Result<DataRequest> DecodeDataRequest(const wire::InMessage& msg, int num_servers);

// A top-k push as the dense gradient ParamServerCore takes: writes [begin, end) into
// *storage (the sent values at their offsets, zeros elsewhere) and points r->values at
// it. The range is checked against `map` (a dense parameter, end within it) before
// anything is allocated, so a hostile range cannot make the server allocate; the core
// checks the rest. No-op for other requests.
Status ExpandTopKPush(const ShardMap& map, DataRequest* r, std::vector<float>* storage);

}  // namespace tessera::paramserver
