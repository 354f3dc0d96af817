// Zero copy is real: the transport holds the sender's Buffer until ZeroMQ has written
// it, and the receiver's payload Buffer is the received frame itself.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "wire/socket.h"

namespace tessera::wire {
namespace {

using testing::Bytes;
using testing::Pattern;

// Polls `cond` until it holds or `ms` pass: waits for a condition, not for a time.
template <typename F>
bool WaitFor(F cond, int ms) {
  Deadline d = Deadline::FromMillis(ms);
  while (!cond()) {
    if (d.Expired()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

Buffer PatternBuffer(size_t n, unsigned seed) {
  Bytes p = Pattern(n, seed);
  return Buffer::CopyOf(p);
}

OutMessage DensePush(Buffer values) {
  const uint64_t n = values.size() / sizeof(float);
  OutMessage m(Op::PUSH);
  auto d = m.header().getBody().initData();
  d.setParamId(1);
  d.setBegin(0);
  d.setEnd(n);
  Status st = m.AddPayload(std::move(values), DType::kF32, n);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return m;
}

class ZeroCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Context::Create();
    ASSERT_TRUE(c.ok());
    ctx_ = *c;
    SocketOptions o;
    o.linger_ms = 0;  // some tests leave messages queued for a peer that never comes
    auto r = Socket::Create(ctx_, SocketType::kRouter, o);
    auto d = Socket::Create(ctx_, SocketType::kDealer, o);
    ASSERT_TRUE(r.ok() && d.ok());
    router_ = std::move(r).value();
    dealer_ = std::move(d).value();
  }
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<Socket> router_, dealer_;
};

TEST_F(ZeroCopyTest, TransportHoldsTheSendersBufferUntilItIsWritten) {
  // Connect first, to a port nobody listens on yet: the message must wait in ZeroMQ's
  // queue, which makes the "still held" moment deterministic.
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(tessera::testing::FreeTcpPort());
  ASSERT_OK(dealer_->Connect(ep));
  const size_t n = 8 << 20;
  Buffer values = PatternBuffer(n, 5);
  const Bytes before(values.bytes().begin(), values.bytes().end());
  ASSERT_OK(dealer_->Send(DensePush(values)));
  EXPECT_EQ(values.use_count(), 2) << "the queued frame must hold a reference, not a copy";

  ASSERT_TRUE(router_->Bind(ep).ok());
  Result<InMessage> r = router_->Recv(Deadline::FromMillis(20000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->num_payloads(), 1u);
  ASSERT_EQ(r->payload(0).size(), n);
  EXPECT_EQ(std::memcmp(r->payload(0).data(), before.data(), n), 0);
  // ZeroMQ's free callback drops the transport's reference once the bytes are written.
  EXPECT_TRUE(WaitFor([&] { return values.use_count() == 1; }, 10000))
      << "use_count stayed " << values.use_count();
  EXPECT_EQ(std::memcmp(values.data(), before.data(), n), 0) << "sender's buffer was modified";
}

TEST_F(ZeroCopyTest, ReceivedPayloadBufferIsTheReceivedFrame) {
  Result<std::string> ep = router_->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  ASSERT_OK(dealer_->Connect(*ep));
  const size_t n = 1 << 20;
  Buffer values = PatternBuffer(n, 9);
  ASSERT_OK(dealer_->Send(DensePush(values)));

  const int64_t base = TEST_LiveReceivedFrames();
  Buffer payload;
  {
    Result<InMessage> r = router_->Recv(Deadline::FromMillis(20000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // The payload frame is held (the header frame too, unless it arrived misaligned
    // and was copied).
    EXPECT_GE(TEST_LiveReceivedFrames(), base + 1);
    payload = r->TakePayload(0);
    EXPECT_EQ(payload.data(), static_cast<const void*>(r->payload(0).data()))
        << "TakePayload must alias the frame, not copy it";
  }
  // The InMessage is gone; the payload frame lives on in `payload`.
  EXPECT_EQ(TEST_LiveReceivedFrames(), base + 1);
  ASSERT_EQ(payload.size(), n);
  EXPECT_EQ(std::memcmp(payload.data(), values.data(), n), 0);
  payload = Buffer();
  EXPECT_EQ(TEST_LiveReceivedFrames(), base);
}

TEST_F(ZeroCopyTest, LargePayloadArrivesIntactAndSenderBufferIsUntouched) {
  Result<std::string> ep = router_->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  ASSERT_OK(dealer_->Connect(*ep));
  const size_t n = 64 << 20;
  Buffer values = PatternBuffer(n, 77);
  const Bytes before(values.bytes().begin(), values.bytes().end());
  ASSERT_OK(dealer_->Send(DensePush(values)));
  Result<InMessage> r = router_->Recv(Deadline::FromMillis(30000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->payload(0).size(), n);
  const std::byte* got = r->payload(0).data();
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i], before[i]) << "mismatch at byte " << i;
  }
  EXPECT_NE(static_cast<const void*>(got), values.data());  // TCP: the receiver has its own frame
  EXPECT_TRUE(WaitFor([&] { return values.use_count() == 1; }, 10000));
  EXPECT_EQ(std::memcmp(values.data(), before.data(), n), 0);
}

TEST_F(ZeroCopyTest, SmallPayloadsAreCopiedNotHeld) {
  // Below kZeroCopyMinBytes the socket copies: the caller may reuse the buffer at once.
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(tessera::testing::FreeTcpPort());
  ASSERT_OK(dealer_->Connect(ep));
  Buffer values = PatternBuffer(64, 1);
  ASSERT_OK(dealer_->Send(DensePush(values)));
  EXPECT_EQ(values.use_count(), 1);
}

// A burst of messages of many sizes, packed by ZeroMQ into its receive batch at any
// offset: each arrives whole, its header readable and its payload 8-byte aligned (the
// kernels read payloads as typed arrays), whether the socket kept the frame or copied a
// misaligned one (wire/socket.cc, TakeFrame), both ways round a ROUTER and a DEALER.
TEST_F(ZeroCopyTest, FramesOfEverySizeArriveWholeAndAligned) {
  Result<std::string> ep = router_->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  ASSERT_OK(dealer_->Connect(*ep));
  std::vector<size_t> floats;
  for (size_t n = 1; n <= 40; ++n) floats.push_back(n);
  for (size_t n = 1020; n <= 1030; ++n) floats.push_back(n);  // about 4 KiB: the round trip's size
  floats.push_back(2100);                                      // over ZeroMQ's 8 KiB receive batch
  for (int dir = 0; dir < 2; ++dir) {
    Socket& from = dir == 0 ? *dealer_ : *router_;
    Socket& to = dir == 0 ? *router_ : *dealer_;
    std::string peer;  // the dealer's routing id, learned from its first message
    if (dir == 1) {
      ASSERT_OK(dealer_->Send(DensePush(PatternBuffer(4, 0))));
      Result<InMessage> hello = router_->Recv(Deadline::FromMillis(10000));
      ASSERT_TRUE(hello.ok()) << hello.status().ToString();
      peer = hello->routing_id();
    }
    for (size_t i = 0; i < floats.size(); ++i) {
      ASSERT_OK(from.Send(DensePush(PatternBuffer(floats[i] * sizeof(float), static_cast<unsigned>(i))), peer));
    }
    for (size_t i = 0; i < floats.size(); ++i) {
      Result<InMessage> r = to.Recv(Deadline::FromMillis(10000));
      ASSERT_TRUE(r.ok()) << "direction " << dir << ", message " << i << ": " << r.status().ToString();
      ASSERT_EQ(r->header().getBody().getData().getEnd(), floats[i]) << "direction " << dir << ", message " << i;
      const Bytes want = Pattern(floats[i] * sizeof(float), static_cast<unsigned>(i));
      ASSERT_EQ(r->payload(0).size(), want.size()) << "direction " << dir << ", message " << i;
      EXPECT_EQ(std::memcmp(r->payload(0).data(), want.data(), want.size()), 0) << "direction " << dir << ", message " << i;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(r->payload(0).data()) % 8, 0u) << "direction " << dir << ", message " << i;
    }
  }
}

}  // namespace
}  // namespace tessera::wire
