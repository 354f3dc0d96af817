// The validating decoder: the only code that turns bytes from the network into an
// InMessage. It never throws and never CHECK-fails on input; every rejection is a
// Status whose message says what was wrong (docs/wire_format.md lists the rules).
//
// Rules, in the order they are checked (the first failure is returned):
//   frame count <= 1 + kMaxPayloadFrames, header size <= kMaxHeaderBytes, total bytes
//   <= max_message_bytes (ResourceExhausted); the header is one well-formed Cap'n Proto
//   message that can be read in full within kHeaderNestingLimit and (bodies with
//   pointers: the data plane's have none) min(kHeaderTraversalLimitWords, 2 x its words
//   + 64) (Corruption); protocolVersion == kProtocolVersion
//   (VersionMismatch: "protocol version 7 != ours 1"); jobId == expected_job_id when one
//   is given (InvalidArgument); op is a known Op and the body union is one the op
//   allows (BodyAllowedForOp); payloads.size() == payload frames; each payload has a
//   valid dtype and byteLength == numElements * DTypeSize == the frame's size
//   (Corruption); data-plane ops carry a DataRequest with begin <= end, dense push
//   carries end-begin elements, sparse requests carry numKeys u64 keys in frame 0
//   (InvalidArgument).
//
// After Decode succeeds the header has been walked in full, so later reads of any field
// through InMessage::header() cannot throw (docs/wire_format.md, "Validation").
//
// Thread safety: the free functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "wire/message.h"

namespace tessera::wire {

// Per-socket decode options.
struct DecodeOptions {
  // Refuse messages whose jobId differs. 0: accept any job (tools, the first contact).
  // Default: 0.
  uint64_t expected_job_id = 0;
  // Refuse messages whose header plus payloads exceed this many bytes.
  // 0: use the --max_message_bytes flag (default kDefaultMaxMessageBytes). Default: 0.
  uint64_t max_message_bytes = 0;
};

// The limit `options` resolves to (the flag when options.max_message_bytes == 0).
uint64_t MaxMessageBytes(const DecodeOptions& options);

// Validates one message and takes ownership of its frames. `header` and `payloads` are
// the received frames (Buffers over ZeroMQ frames, or any bytes in tests and fuzzing).
// `routing_id` is "" except on ROUTER sockets.
Result<InMessage> Decode(std::string routing_id, Buffer header, std::vector<Buffer> payloads,
                         const DecodeOptions& options);

// Convenience for tests and the fuzzer: copies `header` (and each payload) first.
Result<InMessage> DecodeCopy(std::span<const std::byte> header,
                             const std::vector<std::span<const std::byte>>& payloads,
                             const DecodeOptions& options);

// Best effort, for answering a request that failed Decode: reads whatever of jobId,
// requestId, step and op it can from `header`. Never throws; unreadable fields keep
// ReplyTarget's defaults.
ReplyTarget PeekReplyTarget(std::string routing_id, std::span<const std::byte> header);

// For --auth=mac, before Decode: reads senderRole and senderRank from an authenticated
// header (no full validation). False when they cannot be read.
bool PeekSender(std::span<const std::byte> header, int32_t* role, int32_t* rank);

// The op -> body table (the single definition): true when a message with `op` may
// carry body `which`. Unknown ops allow nothing.
bool BodyAllowedForOp(Op op, Body::Which which);

}  // namespace tessera::wire
