// OutMessage construction rules and the reply helpers.
#include "wire/message.h"

#include <gtest/gtest.h>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "tests/wire/sample_messages.h"
#include "wire/codec.h"

namespace tessera::wire {
namespace {

using testing::DecodeFrames;
using testing::SampleMessage;
using testing::ToFrames;

InMessage RoundTrip(OutMessage m) {
  Result<InMessage> r = DecodeFrames(ToFrames(std::move(m)));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : InMessage();
}

TEST(OutMessage, StampsProtocolVersionOpAndNoStep) {
  OutMessage m(Op::BARRIER);
  EXPECT_EQ(m.header().getProtocolVersion(), kProtocolVersion);
  EXPECT_EQ(m.header().getOp(), Op::BARRIER);
  EXPECT_EQ(m.header().getStep(), -1);
}

TEST(OutMessage, AddPayloadRejectsSizeThatDisagreesWithElementCount) {
  OutMessage m(Op::RESPONSE);
  Status st = m.AddPayload(Buffer::Allocate(10), DType::kF32, 3);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_EQ(m.num_payloads(), 0u);
  EXPECT_OK(m.AddPayload(Buffer::Allocate(12), DType::kF32, 3));
  EXPECT_EQ(m.num_payloads(), 1u);
}

TEST(OutMessage, AddPayloadRejectsInvalidDtype) {
  OutMessage m(Op::RESPONSE);
  EXPECT_FALSE(m.AddPayload(Buffer::Allocate(8), static_cast<DType>(42), 1).ok());
}

TEST(OutMessage, AddPayloadRejectsMoreThanMaxPayloadFrames) {
  OutMessage m(Op::RESPONSE);
  for (size_t i = 0; i < kMaxPayloadFrames; ++i) {
    ASSERT_OK(m.AddPayload(Buffer::Allocate(4), DType::kF32, 1));
  }
  EXPECT_EQ(m.AddPayload(Buffer::Allocate(4), DType::kF32, 1).code(), StatusCode::kInvalidArgument);
}

TEST(OutMessage, SubRangePayloadSendsOnlyTheRange) {
  Buffer big = Buffer::Allocate(64);
  for (int i = 0; i < 16; ++i) big.as<float>()[i] = static_cast<float>(i);
  OutMessage m(Op::RESPONSE);
  ASSERT_OK(m.AddPayload(big, big.bytes().subspan(16, 16), DType::kF32, 4));
  EXPECT_EQ(big.use_count(), 2);  // the message keeps the owner alive
  InMessage in = RoundTrip(std::move(m));
  ASSERT_EQ(in.num_payloads(), 1u);
  const auto* f = reinterpret_cast<const float*>(in.payload(0).data());
  EXPECT_EQ(f[0], 4.0f);
  EXPECT_EQ(f[3], 7.0f);
}

TEST(Reply, MakeReplyEchoesRequestIdStepJobAndRouting) {
  OutMessage req = SampleMessage(Op::PULL);
  InMessage in = RoundTrip(std::move(req));
  OutMessage rep = MakeReply(in, Op::RESPONSE);
  EXPECT_EQ(rep.request_id(), 100u + static_cast<uint64_t>(Op::PULL));
  EXPECT_EQ(rep.header().getStep(), 42);
  EXPECT_EQ(rep.header().getJobId(), testing::kSampleJobId);
  EXPECT_EQ(rep.routing_id(), in.routing_id());
}

TEST(Reply, ErrorReplyCarriesStatusAndTurnsBackIntoIt) {
  InMessage req = RoundTrip(SampleMessage(Op::PUSH));
  OutMessage rep = MakeErrorReply(req, Status::NotFound("param 5 is not on this server"));
  InMessage in = RoundTrip(std::move(rep));
  EXPECT_EQ(in.op(), Op::ERROR);
  EXPECT_EQ(in.request_id(), req.request_id());
  EXPECT_EQ(in.header().getBody().getError().getInReplyTo(), Op::PUSH);
  Status st = StatusFromError(in);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "param 5 is not on this server");
}

TEST(Reply, StatusFromErrorIsOkForNonErrorMessages) {
  EXPECT_OK(StatusFromError(RoundTrip(SampleMessage(Op::RESPONSE))));
}

TEST(Reply, StatusFromErrorMapsUnknownCodesToInternal) {
  OutMessage m(Op::ERROR);
  auto e = m.header().getBody().initError();
  e.setCode(200);
  e.setMessage("from the future");
  Status st = StatusFromError(RoundTrip(std::move(m)));
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("200"), std::string::npos) << st.ToString();
}

TEST(Op, NamesMatchTheSchema) {
  EXPECT_EQ(OpName(Op::PUSH_PULL), "pushPull");
  EXPECT_EQ(OpName(Op::STATUS), "status");
  EXPECT_EQ(OpName(static_cast<Op>(99)), "op(99)");
  EXPECT_TRUE(IsDataPlaneOp(Op::PULL));
  EXPECT_FALSE(IsDataPlaneOp(Op::RESPONSE));
}

}  // namespace
}  // namespace tessera::wire
