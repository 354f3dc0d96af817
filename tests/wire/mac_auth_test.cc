// --auth=mac over real ZeroMQ on 127.0.0.1: a normal exchange, and every kind of bad
// frame (forged, replayed, from another job's key, under another identity) refused
// before the codec sees it and logged with the peer's address. A man-in-the-middle made
// of raw zmq sockets replays and alters real frames. Also: a ROUTER restart.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <zmq.h>

#include <atomic>
#include <cstring>
#include <span>
#include <mutex>
#include <thread>

#include "tests/testutil/testutil.h"
#include "tests/wire/sample_messages.h"
#include "wire/socket.h"

namespace tessera::wire {
namespace {

using testing::SampleMessage;
using Frames = std::vector<std::string>;

// Captures WARNING lines, to check refusals are logged with the peer's address.
class WarningSink : public google::LogSink {
 public:
  WarningSink() { google::AddLogSink(this); }
  ~WarningSink() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int, const google::LogMessageTime&,
            const char* message, size_t len) override {
    if (severity < google::GLOG_WARNING) return;
    std::lock_guard<std::mutex> l(mu_);
    lines_.emplace_back(message, len);
  }
  bool Has(const std::string& a, const std::string& b) {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& s : lines_) {
      if (s.find(a) != std::string::npos && s.find(b) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// Raw zmq helpers for the man in the middle.
bool RecvRaw(void* sock, Frames* out, int timeout_ms) {
  zmq_pollitem_t item{sock, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&item, 1, timeout_ms) <= 0) return false;
  out->clear();
  for (bool more = true; more;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) return false;
    out->emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    more = zmq_msg_more(&m);
    zmq_msg_close(&m);
  }
  return true;
}
void SendRaw(void* sock, const Frames& f) {
  for (size_t i = 0; i < f.size(); ++i) zmq_send(sock, f[i].data(), f[i].size(), i + 1 < f.size() ? ZMQ_SNDMORE : 0);
}

CurveKeys Keys() {
  auto k = GenerateCurveKeys();
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return *k;
}

class MacAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = Keys();
    ctx_ = NewContext(keys_);
  }
  static std::shared_ptr<Context> NewContext(const CurveKeys& keys) {
    auto c = Context::Create();
    EXPECT_TRUE(c.ok());
    EXPECT_OK((*c)->EnableMac(keys));
    return *c;
  }
  static std::unique_ptr<Socket> Make(std::shared_ptr<Context> ctx, SocketType t, int rank = 1, bool stamp = true) {
    SocketOptions o;
    o.stamp_sender = stamp;
    o.role = t == SocketType::kRouter ? Role::SERVER : Role::WORKER;
    o.rank = rank;
    o.linger_ms = 0;
    // These tests pump and alter the TCP frames by hand; mac over shared memory has its
    // own test (shm_test.cc, MacOverSharedMemory).
    o.shm.mode = ShmMode::kOff;
    auto s = Socket::Create(std::move(ctx), t, o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  // Receives until a message arrives or `ms` pass; handshake frames are consumed inside.
  static Result<InMessage> RecvFor(Socket& s, int ms) { return s.Recv(Deadline::FromMillis(ms)); }

  CurveKeys keys_;
  std::shared_ptr<Context> ctx_;
};

TEST_F(MacAuthTest, ExchangeWorksAndSendsBeforeTheWelcomeKeepTheirOrder) {
  auto router = Make(ctx_, SocketType::kRouter);
  auto ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto dealer = Make(ctx_, SocketType::kDealer);
  ASSERT_OK(dealer->Connect(*ep));
  // Sent at once: held inside the DEALER until the WELCOME, then flushed in order.
  for (uint64_t id = 1; id <= 5; ++id) {
    OutMessage m = SampleMessage(Op::PUSH);
    m.SetRequestId(id);
    ASSERT_OK(dealer->Send(std::move(m)));
  }
  std::thread server([&] {
    for (int i = 0; i < 5; ++i) {
      auto r = RecvFor(*router, 10000);
      if (!r.ok()) return;
      EXPECT_EQ(r->request_id(), static_cast<uint64_t>(i + 1));
      OutMessage reply = MakeReply(*r, Op::RESPONSE);
      // 1 MiB back, so large frames are tagged too.
      std::vector<float> big(1 << 18, 0.25f);
      Buffer b = Buffer::CopyOf(std::as_bytes(std::span<const float>(big)));
      ASSERT_OK(reply.AddPayload(b, DType::kF32, big.size()));
      ASSERT_OK(router->Send(std::move(reply)));
    }
  });
  for (uint64_t id = 1; id <= 5; ++id) {
    auto r = RecvFor(*dealer, 10000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->request_id(), id);
    ASSERT_EQ(r->num_payloads(), 1u);
    EXPECT_EQ(r->payload(0).size(), size_t{1} << 20);
  }
  server.join();
  EXPECT_EQ(router->auth_refusals().total(), 0u);
  EXPECT_EQ(dealer->auth_refusals().total(), 0u);
  EXPECT_EQ(router->auth_sessions(), 1u);
  EXPECT_EQ(router->decoded_messages(), 5u);
}

// A peer's last message may still be queued when the peer is gone (it sent and exited:
// a worker's final SHUTDOWN). A send to it failing in between must not drop its session,
// or that queued message is refused (seen under Slurm: the coordinator answered another
// worker's finish, and a send to this one failed, just before reading its SHUTDOWN).
TEST_F(MacAuthTest, AFailedSendToAGonePeerKeepsItsQueuedMessages) {
  auto router = Make(ctx_, SocketType::kRouter);
  auto ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto dealer = Make(ctx_, SocketType::kDealer);
  ASSERT_OK(dealer->Connect(*ep));
  OutMessage first = SampleMessage(Op::PUSH);
  first.SetRequestId(1);
  ASSERT_OK(dealer->Send(std::move(first)));
  EXPECT_FALSE(RecvFor(*router, 300).ok());  // consumes the HELLO, answers WELCOME
  EXPECT_FALSE(RecvFor(*dealer, 300).ok());  // consumes the WELCOME, flushes the held send
  auto r = RecvFor(*router, 10000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string peer = r->routing_id();
  OutMessage last = SampleMessage(Op::PUSH);
  last.SetRequestId(2);
  ASSERT_OK(dealer->Send(std::move(last)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // on the wire
  dealer.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the ROUTER saw the disconnect
  OutMessage to_gone = MakeReply(*r, Op::RESPONSE);
  Status sent = router->Send(std::move(to_gone), peer);
  EXPECT_EQ(sent.code(), StatusCode::kUnavailable) << sent.ToString();
  auto queued = RecvFor(*router, 2000);
  ASSERT_TRUE(queued.ok()) << queued.status().ToString();
  EXPECT_EQ(queued->request_id(), 2u);
  EXPECT_EQ(router->auth_refusals().total(), 0u);
}

// The hold queue is bounded by send_hwm; a blocking Send past it waits for the WELCOME
// (as a Send into a full queue waits for room) instead of failing.
TEST_F(MacAuthTest, AFullHoldQueueWaitsForTheWelcome) {
  auto router = Make(ctx_, SocketType::kRouter);
  auto ep = router->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  SocketOptions o;
  o.stamp_sender = true;
  o.role = Role::WORKER;
  o.rank = 1;
  o.linger_ms = 0;
  o.send_hwm = 2;
  auto dealer = std::move(Socket::Create(ctx_, SocketType::kDealer, o)).value();
  ASSERT_OK(dealer->Connect(*ep));
  std::vector<uint64_t> got;
  std::thread server([&] {
    for (int i = 0; i < 5; ++i) {
      auto r = RecvFor(*router, 10000);
      if (!r.ok()) return;
      got.push_back(r->request_id());
    }
  });
  for (uint64_t id = 1; id <= 5; ++id) {
    OutMessage m = SampleMessage(Op::PUSH);
    m.SetRequestId(id);
    ASSERT_OK(dealer->Send(std::move(m)));
  }
  server.join();
  EXPECT_EQ(got, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
}

// A HELLO that gets no WELCOME (lost with a dying connection, or a server that is not
// up yet) is sent again, with a fresh nonce, about once a second while the client waits.
TEST_F(MacAuthTest, UnansweredHelloIsSentAgainWithAFreshNonce) {
  void* raw = zmq_socket(ctx_->raw(), ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof(zero));
  ASSERT_EQ(zmq_bind(raw, "tcp://127.0.0.1:*"), 0);
  char ep[256];
  size_t len = sizeof(ep);
  zmq_getsockopt(raw, ZMQ_LAST_ENDPOINT, ep, &len);
  auto dealer = Make(ctx_, SocketType::kDealer);
  ASSERT_OK(dealer->Connect(ep));
  EXPECT_FALSE(RecvFor(*dealer, 2500).ok());  // wakes up to re-send
  std::vector<std::string> hellos;
  Frames f;
  while (RecvRaw(raw, &f, 200)) {
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[1].size(), kHelloBytes);
    hellos.push_back(f[1]);
  }
  ASSERT_GE(hellos.size(), 2u) << "the HELLO was not sent again";
  EXPECT_LE(hellos.size(), 4u) << "HELLOs must not be sent in a tight loop";
  EXPECT_NE(hellos[0].substr(24, 32), hellos[1].substr(24, 32)) << "a re-sent HELLO reused its nonce";
  dealer.reset();
  zmq_close(raw);
}

// DEALER -> MITM ROUTER | MITM DEALER -> server ROUTER; the test pumps frames by hand.
class MitmTest : public MacAuthTest {
 protected:
  void SetUp() override {
    MacAuthTest::SetUp();
    server_ = Make(ctx_, SocketType::kRouter);
    auto sep = server_->Bind("tcp://127.0.0.1:*");
    ASSERT_TRUE(sep.ok());
    raw_ctx_ = zmq_ctx_new();
    int zero = 0;
    front_ = zmq_socket(raw_ctx_, ZMQ_ROUTER);
    back_ = zmq_socket(raw_ctx_, ZMQ_DEALER);
    zmq_setsockopt(front_, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(back_, ZMQ_LINGER, &zero, sizeof(zero));
    ASSERT_EQ(zmq_bind(front_, "tcp://127.0.0.1:*"), 0);
    char buf[256];
    size_t len = sizeof(buf);
    zmq_getsockopt(front_, ZMQ_LAST_ENDPOINT, buf, &len);
    ASSERT_EQ(zmq_connect(back_, sep->c_str()), 0);
    client_ = Make(ctx_, SocketType::kDealer);
    ASSERT_OK(client_->Connect(buf));
    // Handshake through the middle: HELLO forward, WELCOME back.
    Frames f;
    ASSERT_TRUE(RecvRaw(front_, &f, 5000));
    client_id_ = f[0];
    hello_ = f[1];
    ToServer(f);
    EXPECT_FALSE(RecvFor(*server_, 300).ok());  // consumes the HELLO, answers WELCOME
    ASSERT_TRUE(RecvRaw(back_, &f, 5000));
    ToClient(f);
    EXPECT_FALSE(RecvFor(*client_, 300).ok());  // consumes the WELCOME
    ASSERT_EQ(server_->auth_sessions(), 1u);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    zmq_close(front_);
    zmq_close(back_);
    zmq_ctx_term(raw_ctx_);
  }
  void ToServer(Frames f) {  // strip the MITM's routing id
    f.erase(f.begin());
    SendRaw(back_, f);
  }
  void ToClient(const Frames& f) {
    Frames g{client_id_};
    g.insert(g.end(), f.begin(), f.end());
    SendRaw(front_, g);
  }
  // One message from the client, as the MITM sees it (routing id first).
  Frames Capture(uint64_t request_id) {
    OutMessage m = SampleMessage(Op::PUSH);
    m.SetRequestId(request_id);
    EXPECT_OK(client_->Send(std::move(m)));
    Frames f;
    EXPECT_TRUE(RecvRaw(front_, &f, 5000));
    return f;
  }

  std::unique_ptr<Socket> server_, client_;
  void* raw_ctx_ = nullptr;
  void* front_ = nullptr;
  void* back_ = nullptr;
  std::string client_id_;
  std::string hello_;
};

TEST_F(MitmTest, ForwardedFramesAreAccepted) {
  ToServer(Capture(7));
  auto r = RecvFor(*server_, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request_id(), 7u);
  EXPECT_EQ(server_->auth_refusals().total(), 0u);
}

TEST_F(MitmTest, ReplayedFrameIsRefusedBeforeDecodeAndLogged) {
  WarningSink sink;
  Frames f = Capture(7);
  ToServer(f);
  ASSERT_TRUE(RecvFor(*server_, 5000).ok());
  const uint64_t decoded = server_->decoded_messages();
  ToServer(f);  // the same bytes again
  EXPECT_FALSE(RecvFor(*server_, 300).ok());
  EXPECT_EQ(server_->auth_refusals().replayed, 1u);
  EXPECT_EQ(server_->decoded_messages(), decoded) << "a replayed message reached the codec";
  EXPECT_TRUE(sink.Has("replayed", "127.0.0.1"));
}

TEST_F(MitmTest, AlteredFrameIsRefusedAndTheSessionSurvives) {
  WarningSink sink;
  Frames f = Capture(8);
  ASSERT_GE(f.size(), 4u);  // id, header, payload, trailer
  Frames bad = f;
  bad[2][3] ^= 0x01;  // one bit of the payload
  ToServer(bad);
  EXPECT_FALSE(RecvFor(*server_, 300).ok());
  Frames bad_header = f;
  bad_header[1].back() ^= 0x40;
  ToServer(bad_header);
  EXPECT_FALSE(RecvFor(*server_, 300).ok());
  Frames bad_tag = f;
  bad_tag.back().back() ^= 0x01;
  ToServer(bad_tag);
  EXPECT_FALSE(RecvFor(*server_, 300).ok());
  Frames dropped = f;  // a payload frame removed
  dropped.erase(dropped.begin() + 2);
  ToServer(dropped);
  EXPECT_FALSE(RecvFor(*server_, 300).ok());
  EXPECT_EQ(server_->auth_refusals().bad_tag, 4u);
  EXPECT_EQ(server_->decoded_messages(), 0u) << "an altered message reached the codec";
  EXPECT_TRUE(sink.Has("does not verify", "127.0.0.1"));
  // The genuine frames still pass: refused ones did not advance the sequence number.
  ToServer(f);
  auto r = RecvFor(*server_, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request_id(), 8u);
}

TEST_F(MitmTest, ServerRepliesAreTaggedAndCheckedByTheClient) {
  ToServer(Capture(9));
  auto r = RecvFor(*server_, 5000);
  ASSERT_TRUE(r.ok());
  ASSERT_OK(server_->Send(MakeReply(*r, Op::RESPONSE)));
  Frames f;
  ASSERT_TRUE(RecvRaw(back_, &f, 5000));
  Frames bad = f;
  bad[0][0] ^= 0x01;
  ToClient(bad);
  EXPECT_FALSE(RecvFor(*client_, 300).ok());
  EXPECT_EQ(client_->auth_refusals().bad_tag, 1u);
  ToClient(f);
  auto got = RecvFor(*client_, 5000);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ToClient(f);  // replay towards the client
  EXPECT_FALSE(RecvFor(*client_, 300).ok());
  EXPECT_EQ(client_->auth_refusals().replayed, 1u);
}

TEST_F(MacAuthTest, AnotherJobsKeyIsRefusedAtTheHandshake) {
  WarningSink sink;
  auto server = Make(ctx_, SocketType::kRouter);
  auto ep = server->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto intruder = Make(NewContext(Keys()), SocketType::kDealer);
  ASSERT_OK(intruder->Connect(*ep));
  ASSERT_OK(intruder->Send(SampleMessage(Op::PUSH)));  // held: no WELCOME will come
  EXPECT_FALSE(RecvFor(*server, 500).ok());
  EXPECT_EQ(server->auth_refusals().bad_handshake, 1u);
  EXPECT_EQ(server->auth_sessions(), 0u);
  EXPECT_EQ(server->decoded_messages(), 0u);
  EXPECT_TRUE(sink.Has("HELLO", "127.0.0.1"));
  EXPECT_FALSE(RecvFor(*intruder, 300).ok()) << "the intruder got an answer";
}

// Real frames of a session of another job (the MITM fixture's), sent to a server of
// this job by a raw DEALER: the HELLO fails its tag, the data has no session, and the
// only answer is the constant RETRY frame (no state, no error text).
TEST_F(MitmTest, FramesOfAnotherJobAreRefused) {
  WarningSink sink;
  auto ours = Make(NewContext(Keys()), SocketType::kRouter);
  auto ep = ours->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  void* raw = zmq_socket(raw_ctx_, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof(zero));
  ASSERT_EQ(zmq_connect(raw, ep->c_str()), 0);
  SendRaw(raw, {hello_});
  EXPECT_FALSE(RecvFor(*ours, 500).ok());
  EXPECT_EQ(ours->auth_refusals().bad_handshake, 1u);
  Frames f = Capture(3);
  f.erase(f.begin());
  SendRaw(raw, f);
  EXPECT_FALSE(RecvFor(*ours, 500).ok());
  EXPECT_EQ(ours->auth_refusals().unknown_session, 1u);
  EXPECT_EQ(ours->decoded_messages(), 0u) << "another job's message reached the codec";
  // Log lines are rate-limited (one a second): the HELLO refusal above is the logged one.
  EXPECT_TRUE(sink.Has("HELLO", "127.0.0.1"));
  Frames answer;
  ASSERT_TRUE(RecvRaw(raw, &answer, 2000));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0], std::string("TSAH\x03\x01\0\0", 8));
  EXPECT_FALSE(RecvRaw(raw, &answer, 200)) << "a second answer";
  zmq_close(raw);
}

TEST_F(MacAuthTest, AnotherIdentityThanTheHandshakesIsRefused) {
  WarningSink sink;
  auto server = Make(ctx_, SocketType::kRouter);
  auto ep = server->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  // Opens its session as worker rank 1, then claims rank 2 in a header.
  auto client = Make(ctx_, SocketType::kDealer, /*rank=*/1, /*stamp=*/false);
  ASSERT_OK(client->Connect(*ep));
  OutMessage lie = SampleMessage(Op::PUSH);
  lie.SetSender(Role::WORKER, 2);
  lie.SetRequestId(1);
  ASSERT_OK(client->Send(std::move(lie)));
  OutMessage truth = SampleMessage(Op::PUSH);
  truth.SetSender(Role::WORKER, 1);
  truth.SetRequestId(2);
  ASSERT_OK(client->Send(std::move(truth)));
  std::thread pump([&] { (void)RecvFor(*client, 1500); });  // consumes the WELCOME, flushes
  auto r = RecvFor(*server, 5000);
  pump.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request_id(), 2u);
  EXPECT_EQ(server->auth_refusals().wrong_identity, 1u);
  EXPECT_EQ(server->decoded_messages(), 1u) << "the lying message reached the codec";
  EXPECT_TRUE(sink.Has("rank 2", "127.0.0.1"));
}

TEST_F(MacAuthTest, ClientReconnectsAfterTheServerRestarts) {
  auto first = Make(ctx_, SocketType::kRouter);
  auto ep = first->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  std::atomic<bool> stop{false};
  auto serve = [&](Socket* s) {
    while (!stop) {
      auto r = RecvFor(*s, 50);
      if (r.ok()) (void)s->Send(MakeReply(*r, Op::RESPONSE));
    }
  };
  auto client = Make(ctx_, SocketType::kDealer);
  ASSERT_OK(client->Connect(*ep));
  std::thread t1(serve, first.get());
  auto a = Call(*client, SampleMessage(Op::PUSH), Deadline::FromMillis(5000));
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  stop = true;
  t1.join();
  first.reset();  // the server goes away and comes back on the same port with no sessions

  std::unique_ptr<Socket> second;
  for (int i = 0; i < 50 && !second; ++i) {
    auto s = Make(ctx_, SocketType::kRouter);
    if (s->Bind(*ep).ok()) second = std::move(s);
    else std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(second, nullptr) << "could not rebind " << *ep;
  stop = false;
  std::thread t2(serve, second.get());
  // The first request after the restart may be lost (the new server has no session and
  // answers RETRY); the client says HELLO again and a later request succeeds.
  bool ok = false;
  for (int i = 0; i < 10 && !ok; ++i) ok = Call(*client, SampleMessage(Op::PUSH), Deadline::FromMillis(1000)).ok();
  stop = true;
  t2.join();
  EXPECT_TRUE(ok) << "no request succeeded after the server restarted";
  EXPECT_EQ(second->auth_sessions(), 1u);
}

}  // namespace
}  // namespace tessera::wire
