// Reactor wake-ups (wire/reactor.h, "Waiting"): the loop sleeps on each socket's ZMQ_FD,
// an edge that any call into the socket may consume. Each test makes a call into a
// socket after a reply has reached it (a posted send, a timer's send, another socket's
// handler, a batch cut short) and then sends nothing more: the reply must still be
// handled. A loop that trusted the fd alone sleeps with the replies queued, and these
// tests time out.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/testutil/testutil.h"
#include "wire/reactor.h"

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;

// A ROUTER on its own context and thread (as a peer process would be) that answers each
// request with `burst` replies carrying the request's id and steps 0..burst-1.
class EchoPeer {
 public:
  explicit EchoPeer(int burst = 1) : burst_(burst) {
    ctx_ = Context::Create().value();
    router_ = Socket::Create(ctx_, SocketType::kRouter).value();
    endpoint_ = router_->Bind("tcp://127.0.0.1:*").value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~EchoPeer() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int answered() const { return answered_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      Result<InMessage> req = router_->Recv(Deadline::FromMillis(20));
      if (!req.ok()) continue;
      for (int k = 0; k < burst_; ++k) {
        OutMessage rep = MakeReply(*req, Op::HEARTBEAT);
        rep.SetStep(k);
        EXPECT_OK(router_->Send(std::move(rep)));
      }
      ++answered_;
    }
  }
  const int burst_;
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<Socket> router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

// Counts the messages its reactor's handlers saw, and lets a test wait for a number.
struct Seen {
  std::atomic<int> n{0};
  bool WaitFor(int want, std::chrono::milliseconds limit = 10s) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (n.load() < want) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
};

OutMessage Request(uint64_t id) {
  OutMessage m(Op::HEARTBEAT);
  m.SetRequestId(id);
  return m;
}

// On the loop thread: sends one request on each socket, waits until the peer has
// answered them all and the replies have had time to cross both I/O threads, then sends
// a second request on each. The second send processes the socket's mailbox, which holds
// the first reply's "readable" command, and so clears ZMQ_FD; the second reply lands in
// a pipe already marked readable and raises no new signal.
void SendReplySend(const std::vector<Socket*>& sockets, const EchoPeer& peer, int answered_before) {
  for (Socket* s : sockets) ASSERT_OK(s->Send(Request(1)));
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (peer.answered() < answered_before + static_cast<int>(sockets.size()) &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(30ms);
  for (Socket* s : sockets) ASSERT_OK(s->Send(Request(2)));
}

// An echo peer, and a reactor whose DEALERs count their replies in `seen`.
class ReactorWakeup : public ::testing::Test {
 protected:
  void Rig(int burst = 1, ReactorOptions options = {}) {
    peer_ = std::make_unique<EchoPeer>(burst);
    reactor_ = Reactor::Create(options).value();
  }
  void TearDown() override {
    if (reactor_) reactor_->Stop();
  }
  // A DEALER to the peer, owned by the reactor; `handler` null: count into seen_.
  Socket* AddDealer(Reactor::Handler handler = nullptr) {
    auto d = Socket::Create(ctx_, SocketType::kDealer).value();
    EXPECT_OK(d->Connect(peer_->endpoint()));
    if (!handler) handler = [this](Socket&, InMessage&&) { ++seen_.n; };
    return reactor_->AddSocket(std::move(d), std::move(handler));
  }
  std::shared_ptr<Context> ctx_ = Context::Create().value();
  std::unique_ptr<EchoPeer> peer_;
  std::unique_ptr<Reactor> reactor_;
  Seen seen_;
};

TEST_F(ReactorWakeup, PostedSendsOnManySocketsAfterTheirRepliesArrived) {
  Rig();
  std::vector<Socket*> dealers;
  for (int i = 0; i < 8; ++i) dealers.push_back(AddDealer());
  ASSERT_OK(reactor_->Start());
  ASSERT_TRUE(reactor_->Post([&] { SendReplySend(dealers, *peer_, 0); }));
  EXPECT_TRUE(seen_.WaitFor(16)) << "replies handled: " << seen_.n.load() << " of 16";
}

TEST_F(ReactorWakeup, TimerSendAfterTheReplyArrived) {
  Rig();
  Socket* d = AddDealer();
  ASSERT_OK(reactor_->Start());
  reactor_->RunAfter(1ms, [&] { SendReplySend({d}, *peer_, 0); });
  EXPECT_TRUE(seen_.WaitFor(2)) << "replies handled: " << seen_.n.load() << " of 2";
}

TEST_F(ReactorWakeup, AnotherSocketsHandlerSendsAfterTheReplyArrived) {
  Rig();
  Socket* target = AddDealer();
  // The trigger's reply runs a handler that works the target socket.
  Socket* trigger = AddDealer([&](Socket&, InMessage&&) { SendReplySend({target}, *peer_, 1); });
  ASSERT_OK(reactor_->Start());
  ASSERT_TRUE(reactor_->Post([&] { ASSERT_OK(trigger->Send(Request(7))); }));
  EXPECT_TRUE(seen_.WaitFor(2)) << "replies handled: " << seen_.n.load() << " of 2";
}

TEST_F(ReactorWakeup, BurstCutByTheBatchBoundIsReadToItsLastReply) {
  constexpr int kBurst = 300;
  // One message per turn: every turn but the first leaves the socket with messages that
  // its fd announced long ago.
  Rig(kBurst, ReactorOptions{.max_batch_per_socket = 1});
  std::atomic<int> last_step{-1};
  Socket* dealer = AddDealer([&](Socket&, InMessage&& m) {
    last_step = static_cast<int>(m.step());
    ++seen_.n;
  });
  ASSERT_OK(reactor_->Start());
  ASSERT_TRUE(reactor_->Post([&] { ASSERT_OK(dealer->Send(Request(1))); }));
  EXPECT_TRUE(seen_.WaitFor(kBurst)) << "replies handled: " << seen_.n.load() << " of " << kBurst;
  EXPECT_EQ(last_step.load(), kBurst - 1);
}

TEST_F(ReactorWakeup, HandlerThatSendsOnItsSocketWhileRepliesStream) {
  // Each reply's handler sends the next request on the same socket while the peer's
  // replies to the earlier ones are still arriving (four requests in flight).
  constexpr int kRequests = 2000;
  Rig();
  std::atomic<int> sent{0};
  auto send_next = [&sent](Socket& s) {
    if (sent.load() < kRequests) ASSERT_OK(s.Send(Request(static_cast<uint64_t>(++sent))));
  };
  Socket* dealer = AddDealer([&](Socket& s, InMessage&&) {
    ++seen_.n;
    send_next(s);
  });
  ASSERT_OK(reactor_->Start());
  ASSERT_TRUE(reactor_->Post([&] {
    for (int i = 0; i < 4; ++i) send_next(*dealer);
  }));
  EXPECT_TRUE(seen_.WaitFor(kRequests, 30s)) << "replies handled: " << seen_.n.load() << " of " << kRequests;
}

}  // namespace
}  // namespace tessera::wire
