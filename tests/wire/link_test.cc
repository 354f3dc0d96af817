// The same-host local link (wire/local_link.h) in one process: an echo ROUTER and
// DEALER clients, each on its own Reactor, over real ZeroMQ sockets, real shared-memory
// arenas and real Unix-domain sockets.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "tests/testutil/testutil.h"
#include "common/metrics_registry.h"
#include "tests/wire/link_util.h"
#include "tests/wire/spawn_util.h"
#include "wire/local_link.h"

DECLARE_bool(shm_link);

namespace tessera::wire {
namespace {

using testing::EchoServer;
using testing::LinkClient;
using testing::OnLoop;
using testing::PushPull;
using testing::Seen;

// Collects log lines that mention the local link.
class LinkLog : public google::LogSink {
 public:
  LinkLog() { google::AddLogSink(this); }
  ~LinkLog() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity, const char*, const char*, int, const google::LogMessageTime&, const char* message,
            size_t len) override {
    std::string m(message, len);
    if (m.find("local link") == std::string::npos) return;
    std::lock_guard<std::mutex> l(mu_);
    lines_.push_back(m);
  }
  bool Has(const std::string& needle) {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& s : lines_) {
      if (s.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::string All() {
    std::lock_guard<std::mutex> l(mu_);
    std::string a;
    for (const auto& s : lines_) a += s + "\n";
    return a;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class LinkTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_ = FLAGS_shm_link; }
  void TearDown() override { FLAGS_shm_link = saved_; }

  std::shared_ptr<Context> NewContext(bool mac) {
    auto c = Context::Create();
    EXPECT_TRUE(c.ok());
    if (mac) {
      if (!keys_) keys_ = GenerateCurveKeys().value();
      EXPECT_OK((*c)->EnableMac(*keys_));
    }
    return *c;
  }
  static SocketOptions Opts() {
    SocketOptions o;
    o.shm.mode = ShmMode::kAuto;
    o.stamp_sender = true;  // auth=mac: the sender is the session's identity
    return o;
  }
  static LinkStats ServerStats(EchoServer& s) {
    return OnLoop(*s.reactor, [&] { return s.sock->link_stats(); });
  }
  static bool WaitServer(EchoServer& s, const std::function<bool(const LinkStats&)>& pred, int ms = 10000) {
    const Deadline d = Deadline::FromMillis(ms);
    while (!d.Expired()) {
      if (pred(ServerStats(s))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  // Waits until the client's channel streams (the last step of the shared-memory
  // handshake), so both runs of a comparison send alike.
  static bool WaitStreams(LinkClient& c) {
    const Deadline d = Deadline::FromMillis(20000);
    while (!d.Expired()) {
      if (OnLoop(*c.reactor, [&] { return c.sock->TEST_shm()->streams(); })) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  bool saved_ = true;
  std::optional<CurveKeys> keys_;
};

struct Exchange {
  std::vector<Seen> server, client;
  LinkStats server_stats, client_stats;
};

class LinkBitwise : public LinkTest, public ::testing::WithParamInterface<bool> {};

// Push+pulls of 4 KiB and 1 MiB, streamed and not, with the link on and off: the
// server receives and the client gets back the same messages, bit for bit.
TEST_P(LinkBitwise, MessagesOverTheLinkAreTheZeroMqOnes) {
  const bool mac = GetParam();
  auto run = [&](bool link) {
    FLAGS_shm_link = link;
    Exchange e;
    auto server = EchoServer::Start(NewContext(mac), Opts());
    EXPECT_NE(server, nullptr);
    auto client = LinkClient::Start(NewContext(mac), Opts(), server->endpoint);
    EXPECT_NE(client, nullptr);
    EXPECT_TRUE(WaitStreams(*client));
    if (link) {
      EXPECT_TRUE(client->WaitLinkState("on"));
    }
    uint64_t id = 0;
    for (size_t n : {size_t{4096}, size_t{1} << 20}) {
      for (bool streamed : {false, true}) {
        for (int k = 0; k < 3; ++k) {
          ++id;
          Result<InMessage> r = client->Call(PushPull(id, n, streamed, id));
          EXPECT_TRUE(r.ok()) << r.status().ToString();
          if (!r.ok()) continue;
          EXPECT_OK(r->AwaitPayloads(std::chrono::seconds(10)));
          e.client.push_back(testing::Record(*r));
        }
      }
    }
    e.server = server->seen();
    e.server_stats = ServerStats(*server);
    e.client_stats = OnLoop(*client->reactor, [&] { return client->sock->link_stats(); });
    EXPECT_EQ(OnLoop(*client->reactor, [&] { return client->sock->link_state(); }), link ? "on" : "off");
    return e;
  };
  auto counter = [](const char* name) { return metrics::Global().GetCounter(name).value(); };
  const uint64_t sent_before = counter("link_messages_sent_total");
  const Exchange zmq = run(false);
  EXPECT_EQ(counter("link_messages_sent_total"), sent_before) << "nothing goes on a link with --shm_link=false";
  const uint64_t up_before = counter("link_up_total");
  const Exchange lnk = run(true);
  // Both sides count: 12 requests and 12 replies, one link seen from each end.
  EXPECT_EQ(counter("link_messages_sent_total") - sent_before, 24u);
  EXPECT_EQ(counter("link_up_total") - up_before, 2u);
  ASSERT_EQ(zmq.server.size(), 12u);
  ASSERT_EQ(zmq.client.size(), 12u);
  EXPECT_TRUE(zmq.server == lnk.server) << "the server received other messages over the link";
  EXPECT_TRUE(zmq.client == lnk.client) << "the client received other replies over the link";
  for (size_t i = 0; i < zmq.client.size(); ++i) {
    ASSERT_EQ(zmq.client[i].bytes.size(), zmq.server[i].bytes.size());
    EXPECT_EQ(zmq.client[i].bytes[5], zmq.server[i].bytes[5] ^ testing::kReplyMask);
  }
  EXPECT_EQ(zmq.server_stats.messages_received, 0u);
  EXPECT_EQ(zmq.client_stats.messages_sent, 0u);
  EXPECT_EQ(lnk.server_stats.links_up, 1u);
  EXPECT_EQ(lnk.server_stats.messages_received, 12u);
  EXPECT_EQ(lnk.server_stats.messages_sent, 12u);
  EXPECT_EQ(lnk.client_stats.messages_received, 12u);
}

INSTANTIATE_TEST_SUITE_P(Auth, LinkBitwise, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("Mac") : std::string("None"); });

// Requests sent in waves from before the switch until after it arrive in order, and
// so do their replies; some went over ZeroMQ, the rest over the link.
TEST_F(LinkTest, OrderHoldsAcrossTheSwitchUnderLoad) {
  FLAGS_shm_link = true;
  for (bool mac : {false, true}) {
    auto server = EchoServer::Start(NewContext(mac), Opts());
    ASSERT_NE(server, nullptr);
    auto client = LinkClient::Start(NewContext(mac), Opts(), server->endpoint);
    ASSERT_NE(client, nullptr);
    std::vector<std::future<Result<InMessage>>> fs;
    uint64_t id = 0;
    // Waves from right after Connect until 20 waves after the switch, however long the
    // handshake takes here (a sanitizer build is slow).
    int waves_after = 0;
    for (int wave = 0; wave < 2000 && waves_after < 20; ++wave) {
      for (int k = 0; k < 40; ++k) {
        ++id;
        fs.push_back(client->Send(PushPull(id, id % 97 == 0 ? (256u << 10) : 512, id % 2 == 0, id)));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      if (OnLoop(*client->reactor, [&] { return client->sock->link_state(); }) == "on") ++waves_after;
    }
    ASSERT_EQ(waves_after, 20) << "the link never came up";
    for (auto& f : fs) {
      ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
      Result<InMessage> r = f.get();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    const std::vector<Seen> seen = server->seen();
    ASSERT_EQ(seen.size(), id);
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].request_id, i + 1) << "mac=" << mac;
    {
      std::lock_guard<std::mutex> l(client->mu);
      ASSERT_EQ(client->reply_order.size(), id);
      for (size_t i = 0; i < id; ++i) ASSERT_EQ(client->reply_order[i], i + 1) << "mac=" << mac;
    }
    EXPECT_TRUE(client->WaitLinkState("on"));
    const LinkStats s = ServerStats(*server);
    EXPECT_GT(s.messages_received, 0u) << "nothing went over the link";
    EXPECT_LT(s.messages_received, id) << "nothing went over ZeroMQ before the switch";
  }
}

// A worker's last message (its SHUTDOWN) sits unread in the server's link when the
// worker exits, and the server writes to it before reading: the failed write must not
// throw away what the worker sent (it did: the coordinator then waited for a worker
// that had finished, and declared it dead).
TEST_F(LinkTest, APeersLastMessageSurvivesAFailedWriteToIt) {
  FLAGS_shm_link = true;
  for (bool mac : {false, true}) {
    auto server = EchoServer::Start(NewContext(mac), Opts());
    ASSERT_NE(server, nullptr);
    SocketOptions co = Opts();
    co.routing_id = "last-words";
    auto client = LinkClient::Start(NewContext(mac), co, server->endpoint);
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(client->WaitLinkState("on"));
    ASSERT_TRUE(client->Call(PushPull(1, 512, false)).ok());  // both directions on the link
    ASSERT_TRUE(WaitServer(*server, [](const LinkStats& s) { return s.messages_received >= 1; }));

    // Hold the server's loop, let the client send its last message and exit, then have
    // the server write to it first.
    std::promise<void> held, release;
    std::shared_future<void> go = release.get_future().share();
    std::promise<Status> wrote;
    server->reactor->Post([&] {
      held.set_value();
      go.wait();
      OutMessage m(Op::RESPONSE);
      m.SetRequestId(99);
      m.header().getBody().initResponse().setParamId(7);
      wrote.set_value(server->sock->Send(std::move(m), "last-words"));
    });
    held.get_future().wait();
    client->Send(PushPull(2, 512, false));
    client.reset();  // runs the posted send, then closes the socket and its link
    release.set_value();
    wrote.get_future().get().IgnoreError();  // the peer is gone: its outcome does not matter

    const Deadline d = Deadline::FromMillis(10000);
    bool got = false;
    while (!got && !d.Expired()) {
      for (const Seen& x : server->seen()) got = got || x.request_id == 2;
      if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(got) << "mac=" << mac << ": the client's last message was lost";
  }
}

// An offer naming a socket nobody listens on, and one with a nonce the server does not
// expect: the connection stays on ZeroMQ, says why in the log, and still works.
TEST_F(LinkTest, ForgedOfferOrWrongNonceStaysOnZeroMq) {
  FLAGS_shm_link = true;
  for (bool wrong_nonce : {false, true}) {
    LinkLog log;
    auto server = EchoServer::Start(NewContext(false), Opts());
    ASSERT_NE(server, nullptr);
    OnLoop(*server->reactor, [&] {
      server->sock->TEST_ForgeLinkOffers(wrong_nonce ? "" : "tessera-link/nobody-listens-here", wrong_nonce);
      return 0;
    });
    auto client = LinkClient::Start(NewContext(false), Opts(), server->endpoint);
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(WaitStreams(*client));
    const Deadline d = Deadline::FromMillis(10000);
    while (OnLoop(*client->reactor, [&] { return client->sock->link_stats().refused; }) == 0 && !d.Expired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(OnLoop(*client->reactor, [&] { return client->sock->link_state(); }), "off");
    if (wrong_nonce) {
      EXPECT_TRUE(log.Has("wrong nonce")) << log.All();
      EXPECT_TRUE(log.Has("refused by the server")) << log.All();
      EXPECT_GE(ServerStats(*server).refused, 1u);
    } else {
      EXPECT_TRUE(log.Has("staying on ZeroMQ")) << log.All();
    }
    for (uint64_t id = 1; id <= 3; ++id) {
      Result<InMessage> r = client->Call(PushPull(id, 1 << 20, true, id));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    EXPECT_EQ(ServerStats(*server).messages_received, 0u);
    EXPECT_EQ(server->seen().size(), 3u);
  }
}

// A connection from another uid (tests/wire/link_peer dropped to nobody) is refused with
// a log line; the server's real peers still get their links.
TEST_F(LinkTest, PeerOfAnotherUidIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  FLAGS_shm_link = true;
  LinkLog log;
  auto server = EchoServer::Start(NewContext(false), Opts());
  ASSERT_NE(server, nullptr);
  auto first = LinkClient::Start(NewContext(false), Opts(), server->endpoint);
  ASSERT_TRUE(first->WaitLinkState("on"));
  const std::string name = OnLoop(*server->reactor, [&] { return server->sock->TEST_link_name(); });
  ASSERT_FALSE(name.empty());
  // A separate process (posix_spawn, not fork: the test has threads) of uid 65534.
  const pid_t pid = testing::SpawnPeer(tessera::testing::BinaryDir() + "/tests/wire/link_peer", {"foreign", name});
  ASSERT_GT(pid, 0);
  const int status = testing::WaitChild(pid, 10000);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The next peer's hello makes the server accept, and refuse the other uid.
  auto second = LinkClient::Start(NewContext(false), Opts(), server->endpoint);
  ASSERT_TRUE(second->WaitLinkState("on"));
  EXPECT_TRUE(WaitServer(*server, [](const LinkStats& s) { return s.refused >= 1; }));
  EXPECT_TRUE(log.Has("uid 65534")) << log.All();
  EXPECT_TRUE(second->Call(PushPull(1, 4096, false)).ok());
  EXPECT_TRUE(first->Call(PushPull(1, 4096, false)).ok());
}

// A peer that writes a length prefix over the limit loses its link (and learns it);
// the server keeps serving its other peer over its link, and that peer over ZeroMQ.
TEST_F(LinkTest, OversizedLengthPrefixDropsOnlyThatPeer) {
  FLAGS_shm_link = true;
  LinkLog log;
  auto server = EchoServer::Start(NewContext(true), Opts());
  ASSERT_NE(server, nullptr);
  auto bad = LinkClient::Start(NewContext(true), Opts(), server->endpoint);
  auto good = LinkClient::Start(NewContext(true), Opts(), server->endpoint);
  ASSERT_TRUE(bad->WaitLinkState("on"));
  ASSERT_TRUE(good->WaitLinkState("on"));
  ASSERT_TRUE(bad->Call(PushPull(1, 4096, false)).ok());
  const int fd = OnLoop(*bad->reactor, [&] { return bad->sock->TEST_link_fd(); });
  ASSERT_GE(fd, 0);
  const uint64_t scribble = (1ULL << 62) | 12345;  // no "more" bit, 2^62 bytes
  ASSERT_EQ(send(fd, &scribble, sizeof(scribble), MSG_NOSIGNAL), 8);
  EXPECT_TRUE(WaitServer(*server, [](const LinkStats& s) { return s.dropped == 1; }));
  // The bad peer hears of it: its socket reports the closed link once.
  const Deadline d = Deadline::FromMillis(10000);
  for (;;) {
    {
      std::lock_guard<std::mutex> l(bad->mu);
      if (!bad->errors.empty()) break;
    }
    ASSERT_FALSE(d.Expired()) << "the peer never learnt its link was dropped";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(bad->errors[0].code(), StatusCode::kUnavailable) << bad->errors[0].ToString();
  // Both sides went back to ZeroMQ for that connection: it still works, off the link.
  const uint64_t over_link = ServerStats(*server).messages_received;
  EXPECT_EQ(OnLoop(*bad->reactor, [&] { return bad->sock->link_state(); }), "off");
  Result<InMessage> r = bad->Call(PushPull(2, 4096, false));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ServerStats(*server).messages_received, over_link);
  for (uint64_t id = 1; id <= 5; ++id) {
    Result<InMessage> g = good->Call(PushPull(id, 1 << 20, true, id));
    ASSERT_TRUE(g.ok()) << g.status().ToString();
  }
  EXPECT_EQ(ServerStats(*server).dropped, 1u);
  EXPECT_TRUE(log.Has("local-link frame of")) << log.All();
}

}  // namespace
}  // namespace tessera::wire
