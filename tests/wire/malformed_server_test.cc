// A server never crashes on a bad request: a reactor-based echo server gets each kind of
// malformed message from a raw ZeroMQ DEALER (frames built by hand, not by our Socket),
// answers each with an error reply, and still serves the good request that follows.
#include <gtest/gtest.h>
#include <zmq.h>

#include <atomic>

#include "tests/testutil/testutil.h"
#include "tests/wire/frames_util.h"
#include "tests/wire/sample_messages.h"
#include "wire/reactor.h"

namespace tessera::wire {
namespace {

using testing::Bytes;
using testing::kSampleJobId;
using testing::Pattern;
using testing::RawHeader;

constexpr uint64_t kServerMaxBytes = 64 << 10;

struct BadCase {
  std::string name;
  Bytes header;
  std::vector<Bytes> payloads;
  StatusCode code;
  uint64_t echoed_request_id;  // 0 where the header cannot be read
};

// A readable header of our job with request id `id`; `edit` breaks one thing.
Bytes Header(uint64_t id, const std::function<void(Header::Builder)>& edit) {
  return RawHeader([&](Header::Builder h) {
    h.setJobId(kSampleJobId);
    h.setRequestId(id);
    edit(h);
  });
}

void DensePush(Header::Builder h, uint64_t n) {
  h.setOp(Op::PUSH);
  auto d = h.getBody().initData();
  d.setBegin(0);
  d.setEnd(n);
  auto p = h.initPayloads(1)[0];
  p.setDtype(capnp::DType::F32);
  p.setNumElements(n);
  p.setByteLength(n * 4);
}

std::vector<BadCase> BadCases() {
  std::vector<BadCase> c;
  Bytes junk(64);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::byte>((i * 37 + 11) ^ 0x5a);
  c.push_back({"random bytes as header", junk, {}, StatusCode::kCorruption, 0});
  Bytes good = Header(2, [](Header::Builder h) { h.getBody().initShutdown().setReason("bye"); });
  c.push_back(
      {"truncated header", Bytes(good.begin(), good.begin() + 16), {}, StatusCode::kCorruption, 0});
  c.push_back({"header claims more payload bytes than sent",
               Header(3, [](Header::Builder h) { DensePush(h, 64); }),
               {Pattern(128, 1)},
               StatusCode::kCorruption,
               3});
  c.push_back({"wrong frame count",
               Header(4, [](Header::Builder h) { DensePush(h, 8); }),
               {},
               StatusCode::kCorruption,
               4});
  c.push_back({"unknown op",
               Header(5, [](Header::Builder h) { h.setOp(static_cast<Op>(77)); }),
               {},
               StatusCode::kInvalidArgument,
               5});
  c.push_back({"unknown dtype",
               Header(6,
                      [](Header::Builder h) {
                        DensePush(h, 8);
                        h.getPayloads()[0].setDtype(static_cast<capnp::DType>(12));
                      }),
               {Pattern(32, 1)},
               StatusCode::kCorruption,
               6});
  c.push_back({"wrong protocol version",
               Header(7, [](Header::Builder h) { h.setProtocolVersion(kProtocolVersion + 6); }),
               {},
               StatusCode::kVersionMismatch,
               7});
  c.push_back({"oversized message",
               Header(8,
                      [](Header::Builder h) {
                        h.setOp(Op::RESPONSE);
                        auto p = h.initPayloads(2);
                        for (unsigned i = 0; i < 2; ++i) {
                          p[i].setDtype(capnp::DType::F32);
                          p[i].setNumElements(10 << 10);
                          p[i].setByteLength(40 << 10);
                        }
                      }),
               {Pattern(40 << 10, 1), Pattern(40 << 10, 2)},
               StatusCode::kResourceExhausted,
               8});
  c.push_back({"wrong job id",
               Header(9, [](Header::Builder h) { h.setJobId(kSampleJobId + 1); }),
               {},
               StatusCode::kInvalidArgument,
               9});
  c.push_back({"body not matching op",
               Header(10,
                      [](Header::Builder h) {
                        h.setOp(Op::CKPT_COMMIT);
                        h.getBody().initBarrier().setBarrierId(1);
                      }),
               {},
               StatusCode::kInvalidArgument,
               10});
  return c;
}

// A raw libzmq DEALER: sends exactly the bytes it is given.
class RawDealer {
 public:
  RawDealer(void* ctx, const std::string& endpoint) : sock_(zmq_socket(ctx, ZMQ_DEALER)) {
    int timeout = 10000, linger = 0;
    zmq_setsockopt(sock_, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger));
    EXPECT_EQ(zmq_connect(sock_, endpoint.c_str()), 0);
  }
  ~RawDealer() { zmq_close(sock_); }

  void Send(const Bytes& header, const std::vector<Bytes>& payloads) {
    EXPECT_GE(zmq_send(sock_, header.data(), header.size(), payloads.empty() ? 0 : ZMQ_SNDMORE), 0);
    for (size_t i = 0; i < payloads.size(); ++i) {
      const int more = i + 1 < payloads.size() ? ZMQ_SNDMORE : 0;
      EXPECT_GE(zmq_send(sock_, payloads[i].data(), payloads[i].size(), more), 0);
    }
  }

  // The next reply, decoded (replies come from our server, so they must be valid).
  Result<InMessage> Receive() {
    std::vector<Bytes> frames;
    for (bool more = true; more;) {
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, sock_, 0) < 0) {
        zmq_msg_close(&m);
        return Status::TimedOut("no reply");
      }
      const auto* p = static_cast<const std::byte*>(zmq_msg_data(&m));
      frames.emplace_back(p, p + zmq_msg_size(&m));
      more = zmq_msg_more(&m);
      zmq_msg_close(&m);
    }
    std::vector<std::span<const std::byte>> payloads(frames.begin() + 1, frames.end());
    return DecodeCopy(frames[0], payloads, {});
  }

 private:
  void* sock_;
};

TEST(MalformedInput, EchoServerAnswersEachBadMessageWithAnErrorAndKeepsServing) {
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.decode.expected_job_id = kSampleJobId;
  o.decode.max_message_bytes = kServerMaxBytes;
  auto router = Socket::Create(*ctx, SocketType::kRouter, o);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());

  auto reactor = Reactor::Create();
  ASSERT_TRUE(reactor.ok());
  std::atomic<int> served{0}, rejected{0};
  (*reactor)->AddSocket(
      std::move(router).value(),
      [&](Socket& s, InMessage&& req) {
        ++served;
        s.Send(MakeReply(req, Op::RESPONSE)).IgnoreError();
      },
      [&](Socket&, const Status&) { ++rejected; });
  ASSERT_OK((*reactor)->Start());

  RawDealer client((*ctx)->raw(), *ep);
  const std::vector<BadCase> cases = BadCases();
  for (const BadCase& c : cases) {
    client.Send(c.header, c.payloads);
    Result<InMessage> reply = client.Receive();
    ASSERT_TRUE(reply.ok()) << c.name << ": " << reply.status().ToString();
    ASSERT_EQ(reply->op(), Op::ERROR) << c.name;
    const Status st = StatusFromError(*reply);
    EXPECT_EQ(st.code(), c.code) << c.name << ": " << st.ToString();
    EXPECT_EQ(reply->request_id(), c.echoed_request_id) << c.name;
  }
  // And the server still serves a good request.
  Bytes good = Header(99, [](Header::Builder h) { h.getBody().initHeartbeat().setStep(5); });
  client.Send(good, {});
  Result<InMessage> reply = client.Receive();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->op(), Op::RESPONSE);
  EXPECT_EQ(reply->request_id(), 99u);
  EXPECT_EQ(served.load(), 1);
  EXPECT_EQ(rejected.load(), static_cast<int>(cases.size()));
  (*reactor)->Stop();
}

TEST(MalformedInput, AFrameOverTheLimitIsDroppedByZeroMqAndTheServerSurvives) {
  // ZMQ_MAXMSGSIZE: ZeroMQ drops the connection of a peer that sends one frame over the
  // limit before buffering it. No reply is possible; other peers are unaffected.
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  SocketOptions o;
  o.decode.max_message_bytes = kServerMaxBytes;
  auto router = Socket::Create(*ctx, SocketType::kRouter, o);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  {
    RawDealer big((*ctx)->raw(), *ep);
    big.Send(Header(1, [](Header::Builder h) { DensePush(h, 32 << 10); }), {Pattern(128 << 10, 1)});
    EXPECT_EQ((*router)->Recv(Deadline::FromMillis(300)).status().code(), StatusCode::kTimedOut);
  }
  RawDealer good((*ctx)->raw(), *ep);
  good.Send(Header(2, [](Header::Builder h) { h.getBody().initHeartbeat(); }), {});
  Result<InMessage> r = (*router)->Recv(Deadline::FromMillis(10000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request_id(), 2u);
}

}  // namespace
}  // namespace tessera::wire
