// Turns a decoded data-plane message (push, pull, pushPull) into what ParamServerCore
// takes: a ParamRequest and, for pushes, the gradient values. The codec (wire/codec.h)
// has already checked the header and the frame sizes against their descriptions; this
// checks what only the server cares about (the sender is a worker, a push carries f32
// values) and never reads outside the message's frames.
//
// Thread safety: pure; the result points into `msg`, which must outlive it.
#pragma once

#include <span>

#include "common/status.h"
#include "paramserver/server_core.h"
#include "wire/message.h"

namespace tessera::paramserver {

struct DataRequest {
  ParamRequest req;                // keys point into msg's first payload frame (sparse)
  std::span<const float> values;   // push / pushPull: the gradient; empty for a pull
};

// InvalidArgument (naming what is wrong) for a sender that is not a worker, a push
// without values or with values that are not f32. `num_servers` maps the sender's rank
// to its worker index (rank - 1 - num_servers).
Result<DataRequest> DecodeDataRequest(const wire::InMessage& msg, int num_servers);

}  // namespace tessera::paramserver
