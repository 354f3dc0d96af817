// Socket over real ZeroMQ on 127.0.0.1: round trips of every op, bounded waits,
// ROUTER_MANDATORY and back-pressure.
#include "wire/socket.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/testutil/testutil.h"
#include "tests/wire/sample_messages.h"

namespace tessera::wire {
namespace {

using testing::DiffFromSample;
using testing::SampleMessage;

class SocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Context::Create();
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ctx_ = *c;
  }
  std::unique_ptr<Socket> Make(SocketType t, SocketOptions o = {}) {
    auto s = Socket::Create(ctx_, t, std::move(o));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  std::shared_ptr<Context> ctx_;
};

TEST_F(SocketTest, BindToWildcardPortReturnsTheActualEndpoint) {
  auto router = Make(SocketType::kRouter);
  Result<std::string> ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok()) << ep.status().ToString();
  EXPECT_EQ(ep->rfind("tcp://127.0.0.1:", 0), 0u) << *ep;
  EXPECT_GT(std::stoi(ep->substr(ep->rfind(':') + 1)), 0) << *ep;
}

TEST_F(SocketTest, BindToBadEndpointIsAnError) {
  auto router = Make(SocketType::kRouter);
  EXPECT_FALSE(router->Bind("nonsense://x").ok());
}

TEST_F(SocketTest, EveryOpRoundTripsBetweenThreads) {
  auto router = Make(SocketType::kRouter);
  Result<std::string> ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  // Server thread: receive each op, check it, answer with the same sample.
  std::string server_errors;
  std::thread server([&] {
    for (uint16_t i = 0; i < kNumOps; ++i) {
      Result<InMessage> r = router->Recv(Deadline::FromMillis(10000));
      if (!r.ok()) {
        server_errors += "recv " + std::to_string(i) + ": " + r.status().ToString() + "\n";
        return;
      }
      const Op op = static_cast<Op>(i);
      server_errors += DiffFromSample(*r, op);
      Status st = router->Send(SampleMessage(op), r->routing_id());
      if (!st.ok()) server_errors += "send: " + st.ToString() + "\n";
    }
  });
  auto dealer = Make(SocketType::kDealer);
  ASSERT_OK(dealer->Connect(*ep));
  for (uint16_t i = 0; i < kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    ASSERT_OK(dealer->Send(SampleMessage(op)));
    Result<InMessage> r = dealer->Recv(Deadline::FromMillis(10000));
    ASSERT_TRUE(r.ok()) << OpName(op) << ": " << r.status().ToString();
    EXPECT_EQ(DiffFromSample(*r, op), "") << "reply to " << OpName(op);
    EXPECT_EQ(r->routing_id(), "");  // DEALER side has none
  }
  server.join();
  EXPECT_EQ(server_errors, "");
}

TEST_F(SocketTest, RecvTimesOutWithinBounds) {
  auto dealer = Make(SocketType::kDealer);
  ASSERT_OK(dealer->Connect("tcp://127.0.0.1:1"));
  const auto t0 = Clock::now();
  Result<InMessage> r = dealer->Recv(Deadline::FromMillis(150));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut) << r.status().ToString();
  EXPECT_GE(ms, 145);
  EXPECT_LT(ms, 2000);
}

TEST_F(SocketTest, TryRecvReturnsTimedOutAtOnceWhenNothingIsQueued) {
  auto dealer = Make(SocketType::kDealer);
  const auto t0 = Clock::now();
  EXPECT_EQ(dealer->TryRecv().status().code(), StatusCode::kTimedOut);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(100));
}

TEST_F(SocketTest, RouterSendToUnknownPeerIsUnavailable) {
  auto router = Make(SocketType::kRouter);
  ASSERT_TRUE(router->Bind("tcp://127.0.0.1:*").ok());
  Status st = router->Send(OutMessage(Op::HEARTBEAT), "nobody");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
}

TEST_F(SocketTest, RouterSendWithoutRoutingIdIsInvalidArgument) {
  auto router = Make(SocketType::kRouter);
  EXPECT_EQ(router->Send(OutMessage(Op::HEARTBEAT)).code(), StatusCode::kInvalidArgument);
}

TEST_F(SocketTest, FullQueueMakesSendFailWithinTheSendTimeout) {
  SocketOptions o;
  o.send_hwm = 2;
  o.send_timeout_ms = 100;
  o.linger_ms = 0;
  auto dealer = Make(SocketType::kDealer, o);
  ASSERT_OK(dealer->Connect("tcp://127.0.0.1:" + std::to_string(tessera::testing::FreeTcpPort())));
  Status st;
  int sent = 0;
  const auto t0 = Clock::now();
  for (; sent < 1000; ++sent) {
    st = dealer->Send(OutMessage(Op::HEARTBEAT));
    if (!st.ok()) break;
  }
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_LE(sent, 10) << "the queue should hold about send_hwm messages";
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(SocketTest, CallMatchesTheReplyByRequestIdAndSkipsStaleOnes) {
  auto router = Make(SocketType::kRouter);
  Result<std::string> ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  std::thread server([&] {
    Result<InMessage> r = router->Recv(Deadline::FromMillis(10000));
    if (!r.ok()) return;
    OutMessage stale = MakeReply(*r, Op::RESPONSE);
    stale.SetRequestId(r->request_id() + 1000);
    router->Send(std::move(stale)).IgnoreError();
    router->Send(MakeErrorReply(*r, Status::NotFound("no barrier 9"))).IgnoreError();
  });
  auto dealer = Make(SocketType::kDealer);
  ASSERT_OK(dealer->Connect(*ep));
  OutMessage req(Op::BARRIER);
  req.header().getBody().initBarrier().setBarrierId(9);
  Result<InMessage> r = Call(*dealer, std::move(req), Deadline::FromMillis(10000));
  server.join();
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "no barrier 9");
}

TEST_F(SocketTest, CallTimesOutWithoutAReply) {
  auto router = Make(SocketType::kRouter);
  Result<std::string> ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto dealer = Make(SocketType::kDealer);
  ASSERT_OK(dealer->Connect(*ep));
  Result<InMessage> r = Call(*dealer, OutMessage(Op::HEARTBEAT), Deadline::FromMillis(100));
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut) << r.status().ToString();
}

TEST_F(SocketTest, StampSenderWritesIdentityOnEveryMessage) {
  auto router = Make(SocketType::kRouter);
  Result<std::string> ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  SocketOptions o;
  o.stamp_sender = true;
  o.job_id = 31;
  o.role = Role::SERVER;
  o.rank = 4;
  auto dealer = Make(SocketType::kDealer, o);
  ASSERT_OK(dealer->Connect(*ep));
  ASSERT_OK(dealer->Send(OutMessage(Op::HEARTBEAT)));
  Result<InMessage> r = router->Recv(Deadline::FromMillis(10000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->job_id(), 31u);
  EXPECT_EQ(r->header().getSenderRole(), Role::SERVER);
  EXPECT_EQ(r->header().getSenderRank(), 4);
}

}  // namespace
}  // namespace tessera::wire
