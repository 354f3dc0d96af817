// The validating decoder: every rule in wire/codec.h, one behaviour per test.
#include "wire/codec.h"

#include <capnp/schema.h>
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <random>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "tests/wire/sample_messages.h"

DECLARE_uint64(max_message_bytes);

namespace tessera::wire {
namespace {

using testing::Bytes;
using testing::DecodeFrames;
using testing::Frames;
using testing::Pattern;
using testing::RawHeader;
using testing::SampleMessage;
using testing::ToFrames;

// A valid dense push of `n` f32 values described by a hand-made header, so each test
// can break exactly one thing.
Bytes DensePushHeader(uint64_t n, const std::function<void(Header::Builder)>& edit = nullptr) {
  return RawHeader([&](Header::Builder h) {
    h.setOp(Op::PUSH);
    h.setRequestId(555);
    auto d = h.getBody().initData();
    d.setKind(capnp::ParamKind::DENSE);
    d.setBegin(0);
    d.setEnd(n);
    auto p = h.initPayloads(1)[0];
    p.setDtype(capnp::DType::F32);
    p.setNumElements(n);
    p.setByteLength(n * 4);
    if (edit) edit(h);
  });
}

void ExpectRejected(const Frames& f, StatusCode code, const std::string& needle,
                    const DecodeOptions& o = {}) {
  Result<InMessage> r = DecodeFrames(f, o);
  ASSERT_FALSE(r.ok()) << "accepted a message that should fail with " << needle;
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(Codec, DecodesEverySampleOp) {
  for (uint16_t i = 0; i < kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    Result<InMessage> r = DecodeFrames(ToFrames(SampleMessage(op)));
    ASSERT_TRUE(r.ok()) << OpName(op) << ": " << r.status().ToString();
    EXPECT_EQ(testing::DiffFromSample(*r, op), "") << OpName(op);
  }
}

TEST(Codec, AcceptsValidHandMadeDensePush) {
  ASSERT_TRUE(DecodeFrames({DensePushHeader(8), {Pattern(32, 1)}}).ok());
}

TEST(Codec, RejectsRandomBytesAsHeader) {
  std::mt19937_64 rng(1234);
  for (int trial = 0; trial < 500; ++trial) {
    Bytes header((1 + rng() % 64) * 8);
    for (auto& b : header) b = static_cast<std::byte>(rng());
    Result<InMessage> r = DecodeFrames({header, {}});
    EXPECT_FALSE(r.ok()) << "trial " << trial;
  }
}

TEST(Codec, RejectsHeaderThatIsNotWholeWords) {
  Bytes h = DensePushHeader(8);
  h.push_back(std::byte{0});
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kCorruption, "whole number of 8-byte words");
}

TEST(Codec, RejectsEmptyHeader) {
  ExpectRejected({Bytes{}, {}}, StatusCode::kCorruption, "empty header");
}

TEST(Codec, RejectsTruncatedHeader) {
  const Bytes full = ToFrames(SampleMessage(Op::SHARD_MAP)).header;
  for (size_t words = 1; words * 8 < full.size(); ++words) {
    Bytes cut(full.begin(), full.begin() + static_cast<long>(words * 8));
    Result<InMessage> r = DecodeFrames({cut, {}});
    ASSERT_FALSE(r.ok()) << "accepted " << words << " of " << full.size() / 8 << " words";
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  }
}

TEST(Codec, RejectsPointerOutsideTheSegment) {
  // Shrink the segment table's word count by one and drop the last word: the message
  // framing is consistent but a pointer now points past the segment's end.
  Bytes h = ToFrames(SampleMessage(Op::REGISTER)).header;
  uint32_t seg_words;
  std::memcpy(&seg_words, h.data() + 4, 4);
  seg_words -= 1;
  std::memcpy(h.data() + 4, &seg_words, 4);
  h.resize(h.size() - 8);
  ExpectRejected({h, {}}, StatusCode::kCorruption, "malformed header");
}

// Frame layout of a single-segment header: word 0 segment table, word 1 root pointer,
// words 2-7 Header's data section, word 8 the payloads list pointer, word 9 the body
// pointer. Pointing one of them far outside the segment must be caught on the data-plane
// fast path too (ReadFlatHeader), not only by the reflective walk.
void PointFarAway(Bytes& h, size_t word) {
  uint64_t ptr;
  std::memcpy(&ptr, h.data() + word * 8, 8);
  ASSERT_NE(ptr, 0u) << "word " << word << " is not a pointer";
  ptr = (ptr & ~0xfffffffcULL) | (uint64_t{0x3ffffff0} << 2);  // offset: ~1G words on
  std::memcpy(h.data() + word * 8, &ptr, 8);
}

TEST(Codec, RejectsPayloadListPointingOutsideTheSegment) {
  Bytes h = DensePushHeader(8);
  PointFarAway(h, 8);
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kCorruption, "malformed header");
}

TEST(Codec, RejectsDataBodyPointingOutsideTheSegment) {
  Bytes h = DensePushHeader(8);
  PointFarAway(h, 9);
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kCorruption, "malformed header");
}

TEST(Codec, RejectsBytesAfterTheMessage) {
  Bytes h = ToFrames(SampleMessage(Op::BARRIER)).header;
  h.resize(h.size() + 8);
  ExpectRejected({h, {}}, StatusCode::kCorruption, "bytes after the message");
}

TEST(Codec, RejectsHeaderClaimingMoreBytesThanTheFrameHas) {
  // The header says 64 floats (256 bytes); the frame carries 128 bytes.
  ExpectRejected({DensePushHeader(64), {Pattern(128, 1)}}, StatusCode::kCorruption,
                 "header says 256 bytes, frame has 128");
}

TEST(Codec, RejectsByteLengthThatDisagreesWithElementCount) {
  Bytes h = DensePushHeader(8, [](Header::Builder h) { h.getPayloads()[0].setByteLength(36); });
  ExpectRejected({h, {Pattern(36, 1)}}, StatusCode::kCorruption, "byteLength 36 != 8 elements");
}

TEST(Codec, RejectsElementCountThatOverflows) {
  Bytes h = DensePushHeader(8, [](Header::Builder h) {
    h.getPayloads()[0].setNumElements(1ULL << 62);  // * 4 wraps to 0
    h.getPayloads()[0].setByteLength(0);
  });
  ExpectRejected({h, {Bytes{}}}, StatusCode::kCorruption, "byteLength 0");
}

TEST(Codec, RejectsMissingPayloadFrame) {
  ExpectRejected({DensePushHeader(8), {}}, StatusCode::kCorruption,
                 "describes 1 payloads but 0 payload frames");
}

TEST(Codec, RejectsExtraPayloadFrame) {
  ExpectRejected({DensePushHeader(8), {Pattern(32, 1), Pattern(32, 2)}}, StatusCode::kCorruption,
                 "describes 1 payloads but 2 payload frames");
}

TEST(Codec, RejectsMoreThanMaxPayloadFrames) {
  Frames f{RawHeader([](Header::Builder h) { h.setOp(Op::RESPONSE); }), {}};
  f.payloads.assign(kMaxPayloadFrames + 1, Bytes{});
  ExpectRejected(f, StatusCode::kResourceExhausted, "payload frames; at most");
}

TEST(Codec, RejectsUnknownOp) {
  Bytes h = RawHeader([](Header::Builder h) { h.setOp(static_cast<Op>(99)); });
  ExpectRejected({h, {}}, StatusCode::kInvalidArgument, "unknown op 99");
}

TEST(Codec, RejectsUnknownDtype) {
  Bytes h = DensePushHeader(
      8, [](Header::Builder h) { h.getPayloads()[0].setDtype(static_cast<capnp::DType>(9)); });
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kCorruption, "unknown dtype 9");
}

TEST(Codec, RejectsWrongProtocolVersionNamingBothVersions) {
  Bytes h = RawHeader([](Header::Builder h) { h.setProtocolVersion(7); });
  ExpectRejected({h, {}}, StatusCode::kVersionMismatch,
                 "protocol version 7 != ours " + std::to_string(kProtocolVersion));
}

TEST(Codec, RejectsMessageOverMaxMessageBytes) {
  DecodeOptions o;
  o.max_message_bytes = 1000;
  ExpectRejected({DensePushHeader(512), {Pattern(2048, 1)}}, StatusCode::kResourceExhausted,
                 "exceeds --max_message_bytes=1000", o);
}

TEST(Codec, CountsEveryFrameTowardsMaxMessageBytes) {
  DecodeOptions o;
  o.max_message_bytes = 1000;
  Frames f{RawHeader([](Header::Builder h) {
             h.setOp(Op::RESPONSE);
             auto p = h.initPayloads(2);
             for (unsigned i = 0; i < 2; ++i) {
               p[i].setDtype(capnp::DType::F32);
               p[i].setNumElements(150);
               p[i].setByteLength(600);
             }
           }),
           {Pattern(600, 1), Pattern(600, 2)}};
  ExpectRejected(f, StatusCode::kResourceExhausted, "exceeds --max_message_bytes=1000", o);
  o.max_message_bytes = 2000;
  EXPECT_TRUE(DecodeFrames(f, o).ok());
}

TEST(Codec, MaxMessageBytesDefaultsToTheFlag) {
  gflags::FlagSaver saver;
  FLAGS_max_message_bytes = 100;
  ExpectRejected({DensePushHeader(64), {Pattern(256, 1)}}, StatusCode::kResourceExhausted,
                 "--max_message_bytes=100");
}

TEST(Codec, RejectsHeaderOverMaxHeaderBytes) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setOp(Op::SHUTDOWN);
    h.getBody().initShutdown().setReason(std::string(kMaxHeaderBytes, 'x'));
  });
  ExpectRejected({h, {}}, StatusCode::kResourceExhausted, "bytes; at most");
}

TEST(Codec, RejectsWrongJobId) {
  DecodeOptions o;
  o.expected_job_id = 5;
  Bytes h = RawHeader([](Header::Builder h) { h.setJobId(6); });
  ExpectRejected({h, {}}, StatusCode::kInvalidArgument, "job id 6 != ours 5", o);
}

TEST(Codec, AnyJobIdIsAcceptedWhenNoneIsExpected) {
  Bytes h = RawHeader([](Header::Builder h) { h.setJobId(6); });
  EXPECT_TRUE(DecodeFrames({h, {}}).ok());
}

TEST(Codec, RejectsBodyThatDoesNotMatchOp) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setOp(Op::PUSH);
    h.getBody().initHeartbeat().setStep(3);
  });
  ExpectRejected({h, {}}, StatusCode::kInvalidArgument, "op push does not carry body heartbeat");
}

TEST(Codec, RejectsDataPlaneOpWithoutDataBody) {
  Bytes h = RawHeader([](Header::Builder h) { h.setOp(Op::PULL); });
  ExpectRejected({h, {}}, StatusCode::kInvalidArgument, "op pull does not carry body none");
}

TEST(Codec, RejectsDenseRangeWithBeginAfterEnd) {
  Bytes h = DensePushHeader(8, [](Header::Builder h) {
    h.getBody().getData().setBegin(20);
    h.getBody().getData().setEnd(12);
  });
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kInvalidArgument, "begin 20 > end 12");
}

TEST(Codec, RejectsDensePushWhoseValuesDoNotFillTheRange) {
  Bytes h = DensePushHeader(8, [](Header::Builder h) { h.getBody().getData().setEnd(9); });
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kInvalidArgument, "8 values for range [0, 9)");
}

TEST(Codec, RejectsSparseRequestWhoseKeysAreNotU64) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setOp(Op::PULL);
    auto d = h.getBody().initData();
    d.setKind(capnp::ParamKind::SPARSE);
    d.setNumKeys(4);
    auto p = h.initPayloads(1)[0];
    p.setDtype(capnp::DType::I64);
    p.setNumElements(4);
    p.setByteLength(32);
  });
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kInvalidArgument, "4 u64 values (numKeys)");
}

TEST(Codec, RejectsSparseRequestWithWrongKeyCount) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setOp(Op::PULL);
    auto d = h.getBody().initData();
    d.setKind(capnp::ParamKind::SPARSE);
    d.setNumKeys(5);
    auto p = h.initPayloads(1)[0];
    p.setDtype(capnp::DType::U64);
    p.setNumElements(4);
    p.setByteLength(32);
  });
  ExpectRejected({h, {Pattern(32, 1)}}, StatusCode::kInvalidArgument, "5 u64 values");
}

TEST(Codec, RejectsSparsePushWithPartialRows) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setOp(Op::PUSH);
    auto d = h.getBody().initData();
    d.setKind(capnp::ParamKind::SPARSE);
    d.setNumKeys(2);
    auto p = h.initPayloads(2);
    p[0].setDtype(capnp::DType::U64);
    p[0].setNumElements(2);
    p[0].setByteLength(16);
    p[1].setDtype(capnp::DType::F32);
    p[1].setNumElements(7);
    p[1].setByteLength(28);
  });
  ExpectRejected({h, {Pattern(16, 1), Pattern(28, 2)}}, StatusCode::kInvalidArgument,
                 "not a whole row");
}

TEST(Codec, AcceptsUnalignedHeaderFrame) {
  const Bytes h = ToFrames(SampleMessage(Op::REGISTER)).header;
  Buffer storage = Buffer::Allocate(h.size() + 1);
  std::memcpy(storage.as<std::byte>() + 1, h.data(), h.size());
  // A Buffer whose data() is odd: wraps storage+1 and keeps storage alive.
  Buffer odd = Buffer::Wrap(storage.as<std::byte>() + 1, h.size(), Device::kCPU, [storage] {});
  Result<InMessage> r = Decode("", odd, {}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(testing::DiffFromSample(*r, Op::REGISTER), "");
}

TEST(Codec, MisalignedPayloadFramesAreAlignedCopies) {
  Buffer storage = Buffer::Allocate(33);
  std::byte* const base = storage.as<std::byte>();
  ASSERT_NE(base, nullptr);  // GCC's -Warray-bounds otherwise follows an empty Buffer's nullptr
  Bytes values = Pattern(32, 3);
  std::memcpy(base + 1, values.data(), 32);
  Buffer odd = Buffer::Wrap(base + 1, 32, Device::kCPU, [storage] {});
  Bytes h = DensePushHeader(8);
  Result<InMessage> r = Decode("", Buffer::CopyOf(h), {odd}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->payload(0).data()) % 8, 0u);
  EXPECT_EQ(std::memcmp(r->payload(0).data(), values.data(), 32), 0);
}

TEST(Codec, PeekReplyTargetReadsIdsOfARejectedHeader) {
  Bytes h = RawHeader([](Header::Builder h) {
    h.setProtocolVersion(9);
    h.setRequestId(777);
    h.setJobId(12);
    h.setOp(Op::BARRIER);
  });
  ASSERT_FALSE(DecodeFrames({h, {}}).ok());
  ReplyTarget t = PeekReplyTarget("peer", h);
  EXPECT_EQ(t.routing_id, "peer");
  EXPECT_EQ(t.request_id, 777u);
  EXPECT_EQ(t.job_id, 12u);
  EXPECT_TRUE(t.op_known);
  EXPECT_EQ(t.in_reply_to, Op::BARRIER);
}

TEST(Codec, PeekReplyTargetOfGarbageKeepsDefaults) {
  Bytes junk = Pattern(40, 9);
  ReplyTarget t = PeekReplyTarget("p", junk);
  EXPECT_EQ(t.routing_id, "p");
  EXPECT_FALSE(t.op_known);
}

TEST(Codec, OpTableGivesDataPlaneOpsOnlyTheDataBody) {
  for (uint16_t i = 0; i < kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    int allowed = 0;
    // Every member of the body union, however many branches have added.
    const auto members = ::capnp::Schema::from<Body>().getUnionFields().size();
    for (uint16_t w = 0; w < members; ++w) {
      allowed += BodyAllowedForOp(op, static_cast<Body::Which>(w));
    }
    EXPECT_GE(allowed, 1) << OpName(op);
    if (IsDataPlaneOp(op)) {
      EXPECT_EQ(allowed, 1) << OpName(op);
      EXPECT_TRUE(BodyAllowedForOp(op, Body::DATA)) << OpName(op);
    }
  }
  EXPECT_FALSE(BodyAllowedForOp(static_cast<Op>(kNumOps), Body::NONE));
}

}  // namespace
}  // namespace tessera::wire
