// OutMessage and InMessage: one Tessera message on the wire, as built by a sender and
// as handed to a receiver after validation.
//
// A message is one Cap'n Proto Header frame (wire/tessera.capnp) followed by zero or more
// raw payload frames (docs/wire_format.md). Payloads never pass through Cap'n Proto:
// OutMessage keeps a reference to each payload Buffer and the socket hands ZeroMQ the
// Buffer's own bytes (zmq_msg_init_data), dropping the reference in ZeroMQ's free
// callback. InMessage exposes each received payload frame in place; TakePayload() turns
// it into a Buffer that keeps the ZeroMQ frame alive, so no byte is copied on either
// side (small or misaligned frames excepted, see InMessage).
//
// Names: inside namespace tessera::wire, `capnp::` is the generated schema namespace
// (tessera::wire::capnp); the Cap'n Proto library is `::capnp::`.
//
// Thread safety: neither class is thread-safe; each object belongs to one thread at a
// time (move it to hand it over). Payload Buffers may be shared across threads.
// Storage: each message's builder or reader state is one block taken from, and given
// back to, a small cache owned by the thread that creates or destroys it (message.cc,
// wire/thread_cache.h): a 4 KiB round trip builds and reads four headers, and these blocks were
// a third of its allocations. A block freed on another thread joins that thread's cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "common/tensor.h"
#include "wire/protocol.h"
#include "wire/shm_stream.h"
#include "wire/tessera.capnp.h"

namespace capnp {
class MallocMessageBuilder;
class MessageReader;
}  // namespace capnp

namespace tessera::wire {

using Op = capnp::Op;
using Role = capnp::Role;
using Header = capnp::Header;
using Body = capnp::Header::Body;  // Body::Which::DATA, Body::Which::ERROR, ...

inline constexpr uint16_t kNumOps = 19;  // Op values are 0 .. kNumOps-1

// "push", "ckptPrepare", ...; "op(<n>)" for a value outside the enum.
std::string OpName(Op op);
// True for push, pull and pushPull (the data plane: a DataRequest body is required).
bool IsDataPlaneOp(Op op);

// A message being built for sending. Move-only; consumed by Socket::Send.
class OutMessage {
 public:
  // Sets protocolVersion = kProtocolVersion, op, step = -1 (none) and body = none.
  explicit OutMessage(Op op);
  ~OutMessage();
  OutMessage(OutMessage&&) noexcept;
  OutMessage& operator=(OutMessage&&) noexcept;
  OutMessage(const OutMessage&) = delete;
  OutMessage& operator=(const OutMessage&) = delete;

  // The header to fill (body, step, shardMapVersion ...). Valid until the message is
  // moved or sent. Do not touch `payloads`: it is written from AddPayload() at encode time.
  Header::Builder header();
  Op op() const { return op_; }

  OutMessage& SetJobId(uint64_t job_id);
  OutMessage& SetRequestId(uint64_t request_id);
  OutMessage& SetSender(Role role, int32_t rank);
  OutMessage& SetStep(int64_t step);
  uint64_t request_id() const;

  // Appends a payload frame that is sent without copying: the transport holds a
  // reference to `buffer` until ZeroMQ has written it. The caller must not modify the
  // bytes until then (until the Buffer's use_count drops back).
  // Returns InvalidArgument when buffer.size() != num_elements * DTypeSize(dtype), when
  // dtype is invalid, or when the message already has kMaxPayloadFrames payloads.
  Status AddPayload(Buffer buffer, DType dtype, uint64_t num_elements);
  // Same, for the sub-range `bytes` of `owner` (a chunk of a bigger tensor); `owner`
  // is kept alive while `bytes` are in flight. REQUIRES: bytes lie within owner.
  Status AddPayload(Buffer owner, std::span<const std::byte> bytes, DType dtype,
                    uint64_t num_elements);

  size_t num_payloads() const { return payloads().size(); }
  std::span<const std::byte> payload(size_t i) const { return payloads()[i].bytes; }
  // Sum of payload byte lengths.
  uint64_t payload_bytes() const;

  // Same-host only: the receiver consumes the payloads as they arrive, so the socket may
  // send the descriptor before copying them into shared memory (wire/shm_stream.h).
  // Only for messages whose receiver handles streamed payloads (a dense push+pull).
  void set_streamable(bool v) { streamable_ = v; }
  bool streamable() const { return streamable_; }

  // ROUTER side: the peer this message goes to (set by MakeReply, or by the caller).
  void set_routing_id(std::string id) { routing_id_ = std::move(id); }
  const std::string& routing_id() const { return routing_id_; }

  // Writes the payload descriptions into the header and returns the serialized header
  // frame (word aligned): in place, the segment table written just before the builder's
  // first segment, when the header fits that segment (every data-plane header does);
  // else a flat copy. Valid until the message is modified, moved or destroyed. Called
  // once by the socket.
  std::span<const std::byte> EncodedHeader();
  // The same bytes, copied: for tests and the fuzz corpus.
  std::vector<std::byte> EncodeHeader();

  struct Payload {
    Buffer owner;
    std::span<const std::byte> bytes;
    DType dtype;
    uint64_t num_elements;
  };
  // The payload frames, for the socket to send (and tests to inspect).
  const std::vector<Payload>& payloads() const;

  struct State;  // message.cc: builder, first segment, root, payload list

 private:
  Op op_;
  State* state_ = nullptr;  // owned; null only after a move
  std::string routing_id_;
  bool streamable_ = false;
};

// A received message that passed wire/codec validation (see codec.h for the rules), so
// every field read below is safe: no reader call on it can throw. Move-only.
//
// Payload memory: payload(i) points into the received ZeroMQ frame; a frame whose
// address is not 8-byte aligned (only small frames that ZeroMQ packed into its receive
// batch) is copied once into an aligned buffer, so payload(i) is always 8-byte aligned.
class InMessage {
 public:
  InMessage();
  ~InMessage();
  InMessage(InMessage&&) noexcept;
  InMessage& operator=(InMessage&&) noexcept;
  InMessage(const InMessage&) = delete;
  InMessage& operator=(const InMessage&) = delete;

  // Valid while this InMessage lives (not after it is moved from).
  Header::Reader header() const;

  struct State;  // message.cc: everything but the op, so that a move copies two words
  Op op() const { return op_; }
  uint64_t job_id() const { return header().getJobId(); }
  uint64_t request_id() const { return header().getRequestId(); }
  int64_t step() const { return header().getStep(); }
  // ROUTER side: the sender's routing id (reply to it); empty on other socket types.
  const std::string& routing_id() const;

  size_t num_payloads() const;
  // REQUIRES: i < num_payloads(). The bytes live as long as this InMessage (or longer,
  // while a Buffer from TakePayload(i) lives).
  std::span<const std::byte> payload(size_t i) const;
  DType payload_dtype(size_t i) const;
  uint64_t payload_elements(size_t i) const;
  // A Buffer over payload i that keeps the received frame alive: zero copy. The
  // InMessage keeps its own reference too, so payload(i) stays valid.
  Buffer TakePayload(size_t i) const;
  // Header frame plus payload bytes, as received.
  uint64_t total_bytes() const;

  // Streamed same-host payloads (wire/shm_stream.h): payload i's sender may still be
  // writing it when payload_stream(i) is not null. Read its bytes only as far as
  // payload_stream(i)->WaitFor allowed, or after AwaitPayloads.
  bool streamed() const;
  const ShmStream* payload_stream(size_t i) const;
  // Waits until every streamed payload is complete; afterwards the message reads as an
  // ordinary one (streamed() is false). TimedOut / Corruption / Aborted as WaitFor.
  Status AwaitPayloads(Duration timeout);
  // The socket, after Decode. REQUIRES: a decoded message.
  void set_payload_streams(std::vector<std::shared_ptr<const ShmStream>> s);

 private:
  friend class Decoder;  // wire/codec.cc builds InMessages
  State* state_ = nullptr;  // owned; null when default-constructed or moved from
  Op op_ = Op::ERROR;
};

// A reply to `req`: same jobId, requestId and step; routed back to req's sender on a
// ROUTER socket.
OutMessage MakeReply(const InMessage& req, Op op);

// Who a reply goes to, for requests that could not be (fully) decoded. Fields that
// could not be read stay at their defaults.
struct ReplyTarget {
  std::string routing_id;
  uint64_t job_id = 0;
  uint64_t request_id = 0;
  int64_t step = -1;
  Op in_reply_to = Op::ERROR;  // ERROR when the request's op could not be read
  bool op_known = false;       // in_reply_to was read from the request
};
ReplyTarget ReplyTargetOf(const InMessage& req);

// An error reply: op = error, body ErrorInfo{code, message, inReplyTo}.
// REQUIRES: !status.ok().
OutMessage MakeErrorReply(const InMessage& req, const Status& status);
OutMessage MakeErrorReply(const ReplyTarget& target, const Status& status);

// OK when `msg` is not an error reply; otherwise the Status it carries (an unknown or
// OK code becomes kInternal, with the raw code named in the message).
Status StatusFromError(const InMessage& msg);

}  // namespace tessera::wire
