#include "wire/message.h"

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstring>
#include <utility>

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

namespace {
// Data-plane headers are ~30 words. The library default (1024 words, zero-filled) would
// cost a calloc of 8 KiB per message; bigger headers (shard maps) grow the builder.
constexpr unsigned kFirstSegmentWords = 128;
}  // namespace

OutMessage::OutMessage(Op op)
    : op_(op), builder_(std::make_unique<::capnp::MallocMessageBuilder>(kFirstSegmentWords)) {
  Header::Builder h = builder_->initRoot<Header>();
  h.setProtocolVersion(kProtocolVersion);
  h.setOp(op);
  h.setStep(-1);
  h.getBody().setNone();
}

OutMessage::~OutMessage() = default;
OutMessage::OutMessage(OutMessage&&) noexcept = default;
OutMessage& OutMessage::operator=(OutMessage&&) noexcept = default;

Header::Builder OutMessage::header() { return builder_->getRoot<Header>(); }

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
uint64_t OutMessage::request_id() const {
  return builder_->getRoot<Header>().asReader().getRequestId();
}

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
  if (payloads_.size() >= kMaxPayloadFrames) {
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
  payloads_.push_back(Payload{std::move(owner), bytes, dtype, num_elements});
  return Status::OK();
}

uint64_t OutMessage::payload_bytes() const {
  uint64_t n = 0;
  for (const Payload& p : payloads_) n += p.bytes.size();
  return n;
}

std::vector<std::byte> OutMessage::EncodeHeader() {
  Header::Builder h = header();
  auto list = h.initPayloads(static_cast<unsigned>(payloads_.size()));
  for (size_t i = 0; i < payloads_.size(); ++i) {
    auto d = list[static_cast<unsigned>(i)];
    d.setDtype(static_cast<capnp::DType>(payloads_[i].dtype));
    d.setNumElements(payloads_[i].num_elements);
    d.setByteLength(payloads_[i].bytes.size());
  }
  kj::Array<::capnp::word> words = ::capnp::messageToFlatArray(*builder_);
  std::vector<std::byte> out(words.asBytes().size());
  std::memcpy(out.data(), words.asBytes().begin(), out.size());
  return out;
}

// ---------------------------------------------------------------------------- InMessage

Status InMessage::AwaitPayloads(Duration timeout) {
  for (const auto& s : streams_) {
    if (s) TESSERA_RETURN_IF_ERROR(s->WaitFor(s->length(), timeout));
  }
  streams_.clear();
  return Status::OK();
}

InMessage::InMessage() = default;
InMessage::~InMessage() = default;
InMessage::InMessage(InMessage&&) noexcept = default;
InMessage& InMessage::operator=(InMessage&&) noexcept = default;

DType InMessage::payload_dtype(size_t i) const {
  return static_cast<DType>(header_.getPayloads()[static_cast<unsigned>(i)].getDtype());
}
uint64_t InMessage::payload_elements(size_t i) const {
  return header_.getPayloads()[static_cast<unsigned>(i)].getNumElements();
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
