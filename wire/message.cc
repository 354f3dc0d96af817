#include "wire/message.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <utility>

#include "wire/message_state.h"

namespace tessera::wire {

std::string OpName(Op op) {
  static constexpr const char* kNames[kNumOps] = {
      "register", "welcome",    "declareParams", "shardMap", "barrier", "heartbeat",
      "push",     "pull",       "pushPull",      "response", "error",   "ckptPrepare",
      "ckptDone", "ckptCommit", "shutdown",      "stepDone", "status",  "preempt",
      "rendezvous"};
  const auto raw = static_cast<uint16_t>(op);
  if (raw < kNumOps) return kNames[raw];
  return "op(" + std::to_string(raw) + ")";
}

bool IsDataPlaneOp(Op op) { return op == Op::PUSH || op == Op::PULL || op == Op::PUSH_PULL; }

// ---------------------------------------------------------------------------- OutMessage

OutMessage::OutMessage(Op op) : op_(op), state_(OutStateCache::Take()) {
  state_->builder.emplace(state_->first());
  state_->root = state_->builder->initRoot<Header>();
  Header::Builder h = state_->root;
  h.setProtocolVersion(kProtocolVersion);
  h.setOp(op);
  h.setStep(-1);
  h.getBody().setNone();
}

OutMessage::~OutMessage() {
  if (state_ != nullptr) OutStateCache::Give(state_);
}
OutMessage::OutMessage(OutMessage&& o) noexcept
    : op_(o.op_),
      state_(std::exchange(o.state_, nullptr)),
      routing_id_(std::move(o.routing_id_)),
      streamable_(o.streamable_) {}
OutMessage& OutMessage::operator=(OutMessage&& o) noexcept {
  if (this != &o) {
    if (state_ != nullptr) OutStateCache::Give(state_);
    op_ = o.op_;
    state_ = std::exchange(o.state_, nullptr);
    routing_id_ = std::move(o.routing_id_);
    streamable_ = o.streamable_;
  }
  return *this;
}

// The root, kept from initRoot: each getRoot walked the arena again (~200 instructions,
// and a message is touched 6-8 times on its way out).
Header::Builder OutMessage::header() { return state_->root; }
const std::vector<OutMessage::Payload>& OutMessage::payloads() const { return state_->payloads; }

OutMessage& OutMessage::SetJobId(uint64_t job_id) {
  header().setJobId(job_id);
  return *this;
}
OutMessage& OutMessage::SetRequestId(uint64_t request_id) {
  header().setRequestId(request_id);
  return *this;
}
OutMessage& OutMessage::SetSender(Role role, int32_t rank) {
  Header::Builder h = header();
  h.setSenderRole(role);
  h.setSenderRank(rank);
  return *this;
}
OutMessage& OutMessage::SetStep(int64_t step) {
  header().setStep(step);
  return *this;
}
uint64_t OutMessage::request_id() const { return state_->root.asReader().getRequestId(); }

Status OutMessage::AddPayload(Buffer buffer, DType dtype, uint64_t num_elements) {
  const auto* p = static_cast<const std::byte*>(buffer.data());
  std::span<const std::byte> bytes(p, buffer.size());
  return AddPayload(std::move(buffer), bytes, dtype, num_elements);
}

Status OutMessage::AddPayload(Buffer owner, std::span<const std::byte> bytes, DType dtype,
                              uint64_t num_elements) {
  if (!IsValidDType(static_cast<uint8_t>(dtype))) {
    return Status::InvalidArgument("payload dtype " + std::to_string(static_cast<int>(dtype)) +
                                   " is not a DType");
  }
  if (state_->payloads.size() >= kMaxPayloadFrames) {
    return Status::InvalidArgument("a message carries at most " +
                                   std::to_string(kMaxPayloadFrames) + " payloads");
  }
  const uint64_t want = num_elements * DTypeSize(dtype);
  if (want / DTypeSize(dtype) != num_elements || want != bytes.size()) {
    return Status::InvalidArgument("payload of " + std::to_string(bytes.size()) + " bytes for " +
                                   std::to_string(num_elements) + " " +
                                   std::string(DTypeName(dtype)) + " elements");
  }
  if (owner.device() != Device::kCPU) {
    return Status::InvalidArgument("payload buffers must be host memory");
  }
  state_->payloads.push_back(Payload{std::move(owner), bytes, dtype, num_elements});
  return Status::OK();
}

uint64_t OutMessage::payload_bytes() const {
  uint64_t n = 0;
  for (const Payload& p : state_->payloads) n += p.bytes.size();
  return n;
}

std::span<const std::byte> OutMessage::EncodedHeader() {
  State& st = *state_;
  // A second encode (a held message sent after the auth=mac handshake) rewrites the list
  // it made, rather than orphaning it inside the frame.
  const auto n = static_cast<unsigned>(st.payloads.size());
  auto list = st.root.hasPayloads() && st.root.getPayloads().size() == n ? st.root.getPayloads()
                                                                          : st.root.initPayloads(n);
  for (size_t i = 0; i < st.payloads.size(); ++i) {
    auto d = list[static_cast<unsigned>(i)];
    d.setDtype(static_cast<capnp::DType>(st.payloads[i].dtype));
    d.setNumElements(st.payloads[i].num_elements);
    d.setByteLength(st.payloads[i].bytes.size());
  }
  auto segments = st.builder->getSegmentsForOutput();
  if (segments.size() == 1 && segments[0].begin() == st.first().begin()) {
    // The stream framing of one segment: u32 (segment count - 1) = 0, u32 its size in
    // words, little-endian (docs/wire_format.md), in the word before the segment.
    const uint64_t size = segments[0].size();
    auto* table = reinterpret_cast<unsigned char*>(st.words);
    for (int b = 0; b < 4; ++b) {
      table[b] = 0;
      table[4 + b] = static_cast<unsigned char>(size >> (8 * b));
    }
    return {reinterpret_cast<const std::byte*>(st.words), (1 + size) * sizeof(::capnp::word)};
  }
  kj::Array<::capnp::word> words = ::capnp::messageToFlatArray(segments);
  st.flat.assign(reinterpret_cast<const std::byte*>(words.asBytes().begin()),
                 reinterpret_cast<const std::byte*>(words.asBytes().end()));
  return st.flat;
}

std::vector<std::byte> OutMessage::EncodeHeader() {
  std::span<const std::byte> h = EncodedHeader();
  return {h.begin(), h.end()};
}

// ---------------------------------------------------------------------------- InMessage

Status InMessage::AwaitPayloads(Duration timeout) {
  if (state_ == nullptr) return Status::OK();
  for (const auto& s : state_->streams) {
    if (s) TESSERA_RETURN_IF_ERROR(s->WaitFor(s->length(), timeout));
  }
  state_->streams.clear();
  return Status::OK();
}

InMessage::InMessage() = default;
InMessage::~InMessage() {
  if (state_ != nullptr) InStateCache::Give(state_);
}
InMessage::InMessage(InMessage&& o) noexcept : state_(std::exchange(o.state_, nullptr)), op_(o.op_) {}
InMessage& InMessage::operator=(InMessage&& o) noexcept {
  if (this != &o) {
    if (state_ != nullptr) InStateCache::Give(state_);
    state_ = std::exchange(o.state_, nullptr);
    op_ = o.op_;
  }
  return *this;
}

namespace {
const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}
}  // namespace

Header::Reader InMessage::header() const { return state_ != nullptr ? state_->header : Header::Reader(); }
const std::string& InMessage::routing_id() const { return state_ != nullptr ? state_->routing_id : EmptyString(); }
size_t InMessage::num_payloads() const { return state_ != nullptr ? state_->payloads.size() : 0; }
std::span<const std::byte> InMessage::payload(size_t i) const { return state_->payloads[i].bytes(); }
Buffer InMessage::TakePayload(size_t i) const { return state_->payloads[i]; }
DType InMessage::payload_dtype(size_t i) const { return state_->descs[i].dtype; }
uint64_t InMessage::payload_elements(size_t i) const { return state_->descs[i].elements; }
uint64_t InMessage::total_bytes() const { return state_ != nullptr ? state_->total_bytes : 0; }
bool InMessage::streamed() const { return state_ != nullptr && !state_->streams.empty(); }
const ShmStream* InMessage::payload_stream(size_t i) const {
  return state_ != nullptr && i < state_->streams.size() ? state_->streams[i].get() : nullptr;
}
void InMessage::set_payload_streams(std::vector<std::shared_ptr<const ShmStream>> s) {
  state_->streams = std::move(s);
}

// ---------------------------------------------------------------------------- replies

ReplyTarget ReplyTargetOf(const InMessage& req) {
  ReplyTarget t;
  t.routing_id = req.routing_id();
  t.job_id = req.job_id();
  t.request_id = req.request_id();
  t.step = req.step();
  t.in_reply_to = req.op();
  t.op_known = true;
  return t;
}

OutMessage MakeReply(const InMessage& req, Op op) {
  OutMessage out(op);
  out.SetJobId(req.job_id()).SetRequestId(req.request_id()).SetStep(req.step());
  out.set_routing_id(req.routing_id());
  return out;
}

OutMessage MakeErrorReply(const ReplyTarget& target, const Status& status) {
  OutMessage out(Op::ERROR);
  out.SetJobId(target.job_id).SetRequestId(target.request_id).SetStep(target.step);
  out.set_routing_id(target.routing_id);
  auto e = out.header().getBody().initError();
  // An OK status here is a caller bug; send kInternal rather than "error: OK".
  e.setCode(static_cast<uint8_t>(status.ok() ? StatusCode::kInternal : status.code()));
  e.setMessage(status.ok() ? std::string("error reply built from an OK status") : status.message());
  e.setInReplyTo(target.in_reply_to);
  return out;
}

OutMessage MakeErrorReply(const InMessage& req, const Status& status) {
  return MakeErrorReply(ReplyTargetOf(req), status);
}

Status StatusFromError(const InMessage& msg) {
  if (msg.op() != Op::ERROR) return Status::OK();
  // The codec guarantees op == error carries an ErrorInfo body.
  auto e = msg.header().getBody().getError();
  const uint8_t code = e.getCode();
  std::string text(e.getMessage().cStr());
  if (code == 0 || code > static_cast<uint8_t>(StatusCode::kFailedPrecondition)) {
    return Status::Internal("peer sent error code " + std::to_string(code) + ": " + text);
  }
  return Status(static_cast<StatusCode>(code), std::move(text));
}

}  // namespace tessera::wire
