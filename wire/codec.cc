#include "wire/codec.h"

#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gflags/gflags.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "common/dtype.h"
#include "wire/message_state.h"

DEFINE_uint64(max_message_bytes, tessera::wire::kDefaultMaxMessageBytes,
              "Largest message (header plus payload frames, in bytes) a socket accepts; "
              "larger ones are refused with ResourceExhausted.");

namespace tessera::wire {

namespace {

using BodyWhich = Body::Which;

// The op -> body table: the single place that says which body each op may carry.
// `none` is allowed where a request has nothing to say (a request for the shard map or
// the job status, a bare heartbeat, a reply that only acknowledges).
struct OpRule {
  Op op;
  BodyWhich bodies[2];
  int num_bodies;
};
constexpr OpRule kOpRules[kNumOps] = {
    {Op::REGISTER, {BodyWhich::REGISTER}, 1},
    {Op::WELCOME, {BodyWhich::WELCOME}, 1},
    {Op::DECLARE_PARAMS, {BodyWhich::DECLARE_PARAMS}, 1},
    {Op::SHARD_MAP, {BodyWhich::SHARD_MAP, BodyWhich::NONE}, 2},
    {Op::BARRIER, {BodyWhich::BARRIER}, 1},
    {Op::HEARTBEAT, {BodyWhich::HEARTBEAT, BodyWhich::NONE}, 2},
    {Op::PUSH, {BodyWhich::DATA}, 1},
    {Op::PULL, {BodyWhich::DATA}, 1},
    {Op::PUSH_PULL, {BodyWhich::DATA}, 1},
    {Op::RESPONSE, {BodyWhich::RESPONSE, BodyWhich::NONE}, 2},
    {Op::ERROR, {BodyWhich::ERROR}, 1},
    {Op::CKPT_PREPARE, {BodyWhich::CKPT_PREPARE}, 1},
    {Op::CKPT_DONE, {BodyWhich::CKPT_DONE}, 1},
    {Op::CKPT_COMMIT, {BodyWhich::CKPT_COMMIT}, 1},
    {Op::SHUTDOWN, {BodyWhich::SHUTDOWN, BodyWhich::NONE}, 2},
    {Op::STEP_DONE, {BodyWhich::STEP_DONE}, 1},
    {Op::STATUS, {BodyWhich::STATUS, BodyWhich::NONE}, 2},
    {Op::PREEMPT, {BodyWhich::PREEMPT}, 1},
    {Op::RENDEZVOUS, {BodyWhich::RENDEZVOUS}, 1},
};

constexpr bool RulesAreIndexedByOp() {
  for (uint16_t i = 0; i < kNumOps; ++i) {
    if (static_cast<uint16_t>(kOpRules[i].op) != i) return false;
  }
  return true;
}
static_assert(RulesAreIndexedByOp(), "kOpRules must list every op in enum order");

std::string N(uint64_t v) { return std::to_string(v); }

// "heartbeat", "data", ...: the schema's name of a body union member.
std::string BodyName(BodyWhich which) {
  auto fields = ::capnp::Schema::from<Body>().getUnionFields();
  const auto i = static_cast<uint16_t>(which);
  if (i < fields.size()) return fields[i].getProto().getName().cStr();
  return "body(" + N(i) + ")";
}

// Reads every field of every object reachable from `s`, so that any malformed pointer,
// unterminated text or over-deep nesting throws here, inside Decode's try block, and not
// later in a caller. Recursion depth is bounded by the reader's nesting limit.
void WalkValue(const ::capnp::DynamicValue::Reader& v);
void WalkStruct(const ::capnp::DynamicStruct::Reader& s) {
  for (auto field : s.getSchema().getNonUnionFields()) WalkValue(s.get(field));
  KJ_IF_MAYBE (active, s.which()) {
    WalkValue(s.get(*active));
  }
}
void WalkValue(const ::capnp::DynamicValue::Reader& v) {
  switch (v.getType()) {
    case ::capnp::DynamicValue::STRUCT:
      WalkStruct(v.as<::capnp::DynamicStruct>());
      break;
    case ::capnp::DynamicValue::LIST:
      for (auto e : v.as<::capnp::DynamicList>()) WalkValue(e);
      break;
    default:  // scalars, enums, text and data were checked when get() returned them
      break;
  }
}

// Fast path for the data plane. These bodies are structs without pointer fields, and so
// are Header's own pointees other than the body (the payload list of PayloadDesc), so
// reading the body and the payload list through the typed accessors reads every object
// a caller can reach: the same guarantee as the reflective walk, at a fraction of its cost
// (the walk was half the per-message CPU of a push). The asserts fail the build when the
// schema gains a pointer field, which would make this shortcut incomplete.
static_assert(capnp::Header::_capnpPrivate::pointerCount == 2, "update ReadFlatHeader");
static_assert(capnp::PayloadDesc::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");
static_assert(capnp::DataRequest::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");
static_assert(capnp::DataResponse::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");
static_assert(capnp::Barrier::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");
static_assert(capnp::CheckpointCommit::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");
static_assert(capnp::StepReport::_capnpPrivate::pointerCount == 0, "update ReadFlatHeader");

// Returns false when the body is not one of the flat ones (the caller then walks).
// Reads the payload list's elements only when there are few enough of them to be real:
// a longer list is refused by CheckHeader, and with no traversal limit on the reader a
// list of 2^29 zero-sized elements would otherwise be walked here.
using Descs = ::capnp::List<capnp::PayloadDesc>::Reader;

bool ReadFlatHeader(Header::Reader h, Descs list) {
  Body::Reader b = h.getBody();
  switch (b.which()) {
    case BodyWhich::NONE:
      break;
    case BodyWhich::DATA:
      (void)b.getData();
      break;
    case BodyWhich::RESPONSE:
      (void)b.getResponse();
      break;
    case BodyWhich::BARRIER:
      (void)b.getBarrier();
      break;
    // Heartbeats carry a metrics list (wire/metrics_wire.h): walked like the control plane.
    case BodyWhich::CKPT_COMMIT:
      (void)b.getCkptCommit();
      break;
    case BodyWhich::PREEMPT:
      (void)b.getPreempt();
      break;
    case BodyWhich::STEP_DONE:
      (void)b.getStepDone();
      break;
    default:
      return false;
  }
  if (list.size() <= kMaxPayloadFrames) {
    for (auto p : list) (void)p.getByteLength();
  }
  return true;
}

// Holds the header words with 8-byte alignment, as Cap'n Proto requires.
Result<Buffer> AlignedHeader(Buffer header) {
  if (header.size() % sizeof(::capnp::word) != 0) {
    return Status::Corruption("header frame of " + N(header.size()) +
                              " bytes is not a whole number of 8-byte words");
  }
  if (reinterpret_cast<uintptr_t>(header.data()) % alignof(::capnp::word) == 0) return header;
  // ZeroMQ packs small frames into its receive batch at any offset: copy (headers are small).
  return Buffer::CopyOf(header.bytes());
}

kj::ArrayPtr<const ::capnp::word> Words(const Buffer& b) {
  return {reinterpret_cast<const ::capnp::word*>(b.data()), b.size() / sizeof(::capnp::word)};
}

// Payload bytes are handed to kernels as typed arrays: make sure they are aligned.
Buffer AlignedPayload(Buffer frame) {
  if (reinterpret_cast<uintptr_t>(frame.data()) % 8 == 0) return frame;
  return Buffer::CopyOf(frame.bytes());
}

Status CheckDataRequest(Op op, Header::Reader h, Descs descs, const std::vector<Buffer>& frames) {
  auto d = h.getBody().getData();
  // Built only for an error: it cost an allocation per request.
  auto what = [&] { return OpName(op) + " of param " + N(d.getParamId()); };
  const bool sends_values = op != Op::PULL;
  switch (d.getKind()) {
    case capnp::ParamKind::DENSE: {
      if (d.getBegin() > d.getEnd()) {
        return Status::InvalidArgument(what() + ": range begin " + N(d.getBegin()) + " > end " +
                                       N(d.getEnd()));
      }
      // A top-k push (--compress=topk:R): numKeys i32 offsets into the range, then as many
      // f32 values; the server checks the offsets themselves.
      if (sends_values && frames.size() == 2 && descs[0].getDtype() == capnp::DType::I32) {
        if (descs[0].getNumElements() != d.getNumKeys() || descs[1].getNumElements() != d.getNumKeys() ||
            d.getNumKeys() > d.getEnd() - d.getBegin()) {
          return Status::InvalidArgument(what() + ": a top-k push needs numKeys (" + N(d.getNumKeys()) +
                                         ") i32 offsets and as many values, at most the range's " +
                                         N(d.getEnd() - d.getBegin()) + " elements");
        }
        return Status::OK();
      }
      const size_t want_frames = sends_values ? 1 : 0;
      if (frames.size() != want_frames) {
        return Status::InvalidArgument(what() + ": dense request carries " + N(frames.size()) +
                                       " payloads, expected " + N(want_frames) +
                                       (sends_values ? " (or 2 for a top-k push)" : ""));
      }
      if (sends_values && descs[0].getNumElements() != d.getEnd() - d.getBegin()) {
        return Status::InvalidArgument(what() + ": " + N(descs[0].getNumElements()) +
                                       " values for range [" + N(d.getBegin()) + ", " +
                                       N(d.getEnd()) + ")");
      }
      return Status::OK();
    }
    case capnp::ParamKind::SPARSE: {
      const size_t want_frames = sends_values ? 2 : 1;
      if (frames.size() != want_frames) {
        return Status::InvalidArgument(what() + ": sparse request carries " + N(frames.size()) +
                                       " payloads, expected " + N(want_frames));
      }
      if (descs[0].getDtype() != capnp::DType::U64 || descs[0].getNumElements() != d.getNumKeys()) {
        return Status::InvalidArgument(what() + ": keys payload must be " + N(d.getNumKeys()) +
                                       " u64 values (numKeys)");
      }
      if (sends_values) {
        const uint64_t n = descs[1].getNumElements(), k = d.getNumKeys();
        if (k == 0 ? n != 0 : n % k != 0) {
          return Status::InvalidArgument(
              what() + ": " + N(n) + " values is not a whole row for each of " + N(k) + " keys");
        }
      }
      return Status::OK();
    }
  }
  return Status::InvalidArgument(what() + ": unknown param kind " +
                                 N(static_cast<uint16_t>(d.getKind())));
}

// Checks that need only the (already walked) header and the frame sizes.
Status CheckHeader(Header::Reader h, Descs descs, const std::vector<Buffer>& frames,
                   const DecodeOptions& options) {
  if (h.getProtocolVersion() != kProtocolVersion) {
    return Status::VersionMismatch("protocol version " + N(h.getProtocolVersion()) + " != ours " +
                                   N(kProtocolVersion));
  }
  // A tool asking for the job's status (`tessera status`) cannot know the job id: a
  // status request with jobId 0 is accepted. It only reads; CURVE, when on, still gates it.
  const bool tool_status = h.getJobId() == 0 && h.getOp() == Op::STATUS;
  if (options.expected_job_id != 0 && h.getJobId() != options.expected_job_id && !tool_status) {
    return Status::InvalidArgument("job id " + N(h.getJobId()) + " != ours " +
                                   N(options.expected_job_id));
  }
  const Op op = h.getOp();
  if (static_cast<uint16_t>(op) >= kNumOps) {
    return Status::InvalidArgument("unknown op " + N(static_cast<uint16_t>(op)));
  }
  const auto which = h.getBody().which();
  if (!BodyAllowedForOp(op, which)) {
    return Status::InvalidArgument("op " + OpName(op) + " does not carry body " + BodyName(which));
  }
  if (frames.size() > kMaxPayloadFrames) {
    return Status::ResourceExhausted(N(frames.size()) + " payload frames; at most " +
                                     N(kMaxPayloadFrames));
  }
  if (descs.size() != frames.size()) {
    return Status::Corruption("header describes " + N(descs.size()) + " payloads but " +
                              N(frames.size()) + " payload frames arrived");
  }
  for (unsigned i = 0; i < descs.size(); ++i) {
    auto d = descs[i];
    const auto raw = static_cast<uint16_t>(d.getDtype());
    if (raw >= kNumDTypes) {
      return Status::Corruption("payload " + N(i) + ": unknown dtype " + N(raw));
    }
    const uint64_t elem = DTypeSize(static_cast<DType>(raw));
    const uint64_t n = d.getNumElements();
    if (n > std::numeric_limits<uint64_t>::max() / elem || n * elem != d.getByteLength()) {
      return Status::Corruption("payload " + N(i) + ": byteLength " + N(d.getByteLength()) +
                                " != " + N(n) + " elements * " + N(elem) + " bytes");
    }
    if (d.getByteLength() != frames[i].size()) {
      return Status::Corruption("payload " + N(i) + ": header says " + N(d.getByteLength()) +
                                " bytes, frame has " + N(frames[i].size()));
    }
  }
  if (IsDataPlaneOp(op)) return CheckDataRequest(op, h, descs, frames);
  return Status::OK();
}

}  // namespace

// Builds InMessages; a friend of InMessage.
class Decoder {
 public:
  static Result<InMessage> Run(std::string routing_id, Buffer header, std::vector<Buffer> payloads,
                               const DecodeOptions& options) {
    const uint64_t max_bytes = MaxMessageBytes(options);
    uint64_t total = header.size();
    for (const Buffer& p : payloads) total += p.size();
    if (header.size() > kMaxHeaderBytes) {
      return Status::ResourceExhausted("header of " + N(header.size()) + " bytes; at most " +
                                       N(kMaxHeaderBytes));
    }
    if (total > max_bytes) {
      return Status::ResourceExhausted("message of " + N(total) +
                                       " bytes exceeds --max_message_bytes=" + N(max_bytes));
    }
    if (header.size() == 0) return Status::Corruption("empty header frame");
    TESSERA_ASSIGN_OR_RETURN(Buffer aligned, AlignedHeader(std::move(header)));

    InMessage m;
    m.state_ = InStateCache::Take();
    try {
      const kj::ArrayPtr<const ::capnp::word> words = Words(aligned);
      // The reader callers use: no traversal limit, so their repeated reads of fields
      // can never turn into an exception; the nesting limit stays.
      ::capnp::ReaderOptions relaxed;
      relaxed.traversalLimitInWords = std::numeric_limits<uint64_t>::max();
      relaxed.nestingLimit = kHeaderNestingLimit;
      ::capnp::FlatArrayMessageReader& reader = m.state_->reader.emplace(words, relaxed);
      if (reader.getEnd() != words.end()) {
        return Status::Corruption("header frame has bytes after the message");
      }
      Header::Reader h = reader.getRoot<Header>();
      const Descs descs = h.getPayloads();  // read once: each getPayloads walks the pointer again
      // The data plane's bodies (ReadFlatHeader) are read in one pass on that reader:
      // what a caller can reach is the root, one pointer-free struct and the payload
      // list, a bounded number of objects, so there is no aliasing to amplify and the
      // traversal budget has nothing to bound (a second, budgeted reader was a third of
      // a push's decode). Any other body is walked in full by a second reader with the
      // small limits first: the walk reads each object once, so an honest header
      // traverses about its own size, and a budget proportional to the frame bounds both
      // aliasing amplification and lists of zero-sized elements (which Cap'n Proto
      // charges one word each).
      if (!ReadFlatHeader(h, descs)) {
        ::capnp::ReaderOptions strict;
        strict.traversalLimitInWords = std::min<uint64_t>(kHeaderTraversalLimitWords, 2 * words.size() + 64);
        strict.nestingLimit = kHeaderNestingLimit;
        ::capnp::FlatArrayMessageReader check(words, strict);
        WalkStruct(check.getRoot<::capnp::DynamicStruct>(::capnp::Schema::from<Header>()));
      }
      TESSERA_RETURN_IF_ERROR(CheckHeader(h, descs, payloads, options));
      // CheckHeader bounded the list by the frames (at most kMaxPayloadFrames).
      for (unsigned i = 0; i < descs.size(); ++i) {
        m.state_->descs[i] = {static_cast<DType>(descs[i].getDtype()), descs[i].getNumElements()};
      }
      m.state_->header = h;
      m.op_ = h.getOp();
    } catch (const kj::Exception& e) {
      return Status::Corruption("malformed header: " + std::string(e.getDescription().cStr()));
    } catch (const std::exception& e) {
      return Status::Corruption(std::string("malformed header: ") + e.what());
    }
    m.state_->routing_id = std::move(routing_id);
    m.state_->header_frame = std::move(aligned);
    for (Buffer& p : payloads) m.state_->payloads.push_back(AlignedPayload(std::move(p)));
    m.state_->total_bytes = total;
    return m;
  }
};

uint64_t MaxMessageBytes(const DecodeOptions& options) {
  return options.max_message_bytes != 0 ? options.max_message_bytes : FLAGS_max_message_bytes;
}

Result<InMessage> Decode(std::string routing_id, Buffer header, std::vector<Buffer> payloads,
                         const DecodeOptions& options) {
  return Decoder::Run(std::move(routing_id), std::move(header), std::move(payloads), options);
}

Result<InMessage> DecodeCopy(std::span<const std::byte> header,
                             const std::vector<std::span<const std::byte>>& payloads,
                             const DecodeOptions& options) {
  std::vector<Buffer> frames;
  frames.reserve(payloads.size());
  for (auto p : payloads) frames.push_back(Buffer::CopyOf(p));
  return Decode("", Buffer::CopyOf(header), std::move(frames), options);
}

ReplyTarget PeekReplyTarget(std::string routing_id, std::span<const std::byte> header) {
  ReplyTarget t;
  t.routing_id = std::move(routing_id);
  const size_t words = header.size() / sizeof(::capnp::word);
  if (words == 0 || header.size() > kMaxHeaderBytes) return t;
  try {
    kj::Array<::capnp::word> copy = kj::heapArray<::capnp::word>(words);
    std::memcpy(copy.begin(), header.data(), words * sizeof(::capnp::word));
    ::capnp::ReaderOptions opts;
    opts.traversalLimitInWords = kHeaderTraversalLimitWords;
    opts.nestingLimit = kHeaderNestingLimit;
    ::capnp::FlatArrayMessageReader reader(copy, opts);
    Header::Reader h = reader.getRoot<Header>();  // data fields are bounds-checked here
    t.job_id = h.getJobId();
    t.request_id = h.getRequestId();
    t.step = h.getStep();
    if (static_cast<uint16_t>(h.getOp()) < kNumOps) {
      t.in_reply_to = h.getOp();
      t.op_known = true;
    }
  } catch (...) {
    // Best effort by contract: whatever could not be read keeps its default.
  }
  return t;
}

bool PeekSender(std::span<const std::byte> header, int32_t* role, int32_t* rank) {
  const size_t words = header.size() / sizeof(::capnp::word);
  if (words == 0 || header.size() % sizeof(::capnp::word) != 0 || header.size() > kMaxHeaderBytes) return false;
  try {
    // Every auth=mac request is peeked: read an aligned frame (the socket's copies are) in
    // place, and copy only a misaligned one.
    kj::Array<::capnp::word> copy;
    kj::ArrayPtr<const ::capnp::word> in(reinterpret_cast<const ::capnp::word*>(header.data()), words);
    if (reinterpret_cast<uintptr_t>(header.data()) % alignof(::capnp::word) != 0) {
      copy = kj::heapArray<::capnp::word>(words);
      std::memcpy(copy.begin(), header.data(), words * sizeof(::capnp::word));
      in = copy;
    }
    ::capnp::ReaderOptions opts;
    opts.traversalLimitInWords = kHeaderTraversalLimitWords;
    opts.nestingLimit = kHeaderNestingLimit;
    ::capnp::FlatArrayMessageReader reader(in, opts);
    Header::Reader h = reader.getRoot<Header>();
    *role = static_cast<int32_t>(h.getSenderRole());
    *rank = h.getSenderRank();
    return true;
  } catch (...) {
    return false;
  }
}

bool BodyAllowedForOp(Op op, Body::Which which) {
  const auto raw = static_cast<uint16_t>(op);
  if (raw >= kNumOps) return false;
  const OpRule& rule = kOpRules[raw];
  for (int i = 0; i < rule.num_bodies; ++i) {
    if (rule.bodies[i] == which) return true;
  }
  return false;
}

}  // namespace tessera::wire
