// Leader/follower on the reactor (wire/reactor.h, "The loop lock"): callers send with
// RunInline and read their replies with Lead while the loop keeps watching the same
// sockets, against a ROUTER peer on its own context and thread over TCP. Each round is
// bounded: a reply left queued behind a quiet ZMQ_FD (a lost wake-up) fails the round
// after a few seconds instead of hanging.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "wire/reactor.h"

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kSilent = 1;  // a request's step: the peer answers nothing

// Answers each request (step 0) with one reply carrying its id; drops silent ones.
class Peer {
 public:
  Peer() {
    ctx_ = Context::Create().value();
    router_ = Socket::Create(ctx_, SocketType::kRouter).value();
    endpoint_ = router_->Bind("tcp://127.0.0.1:*").value();
    thread_ = std::thread([this] {
      while (!stop_) {
        Result<InMessage> req = router_->Recv(Deadline::FromMillis(20));
        if (!req.ok() || req->step() == kSilent) continue;
        EXPECT_OK(router_->Send(MakeReply(*req, Op::HEARTBEAT)));
      }
    });
  }
  ~Peer() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  std::shared_ptr<Context> ctx_;
  std::unique_ptr<Socket> router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

OutMessage Request(uint64_t id, int64_t step = 0) {
  OutMessage m(Op::HEARTBEAT);
  m.SetRequestId(id);
  m.SetStep(step);
  return m;
}

// A caller's eventfd, as worker::Handle keeps one per waiting thread.
struct WakeFd {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~WakeFd() { close(fd); }
};

// Replies seen, by request id; whoever handles a reply wakes the caller that waits for
// it (caller = id / kPerCaller), as Handle::CompletePart does.
constexpr uint64_t kPerCaller = 1000000;
struct Replies {
  std::mutex mu;
  std::set<uint64_t> got;
  std::vector<int> caller_fds;
  void Add(uint64_t id) {
    std::lock_guard<std::mutex> l(mu);
    got.insert(id);
    const uint64_t c = id / kPerCaller;
    const uint64_t one = 1;
    if (c < caller_fds.size()) {
      EXPECT_EQ(write(caller_fds[c], &one, sizeof(one)), 8);
    }
  }
  bool Has(uint64_t id) {
    std::lock_guard<std::mutex> l(mu);
    return got.count(id) != 0;
  }
};

class ReactorLead : public ::testing::Test {
 protected:
  void SetUp() override {
    reactor_ = Reactor::Create().value();
    auto d = Socket::Create(ctx_, SocketType::kDealer).value();
    ASSERT_OK(d->Connect(peer_.endpoint()));
    dealer_ = reactor_->AddSocket(std::move(d), [this](Socket&, InMessage&& m) { replies_.Add(m.request_id()); },
                                  nullptr, /*leadable=*/true);
    ASSERT_OK(reactor_->Start());
  }
  void TearDown() override { reactor_->Stop(); }

  // Sends request `id` itself, then leads until its reply is in; false after `limit`.
  bool RoundTrip(uint64_t id, int fd, Duration limit = 5s) {
    EXPECT_TRUE(reactor_->RunInline([&] { EXPECT_OK(dealer_->Send(Request(id))); }));
    const auto until = Clock::now() + limit;
    while (!replies_.Has(id)) {
      if (Clock::now() >= until || !reactor_->Lead(fd, until)) return replies_.Has(id);
    }
    return true;
  }

  Peer peer_;
  std::shared_ptr<Context> ctx_ = Context::Create().value();
  std::unique_ptr<Reactor> reactor_;
  Socket* dealer_ = nullptr;
  Replies replies_;
};

// Another caller keeps sending (silent requests) on the leader's socket: each send
// processes the socket's mailbox and may take the "readable" signal of the leader's
// reply, which then sits queued behind a quiet ZMQ_FD that neither the leader nor the
// loop (both asleep in poll) will see fire. The sender must read the socket empty
// before it lets go of the loop lock; without that, rounds hang into their bound.
TEST_F(ReactorLead, ReplyWhoseEdgeAnotherCallersSendTookStillCompletes) {
  WakeFd leader;
  replies_.caller_fds = {leader.fd};
  std::atomic<bool> done{false};
  std::thread sender([&] {
    uint64_t n = 0;
    while (!done) {
      // Only while nothing waits in the outbox: the socket never waits in Send (its
      // reactor owns it), so an unpaced flood would fill the outbox, and the rounds'
      // requests would queue behind it or be refused.
      ASSERT_TRUE(reactor_->RunInline([&] {
        if (dealer_->outbox_size() == 0) ASSERT_OK(dealer_->Send(Request(kPerCaller * 9 + n++, kSilent)));
      }));
      std::this_thread::yield();
    }
  });
  int late = 0;
  const auto start = Clock::now();
  for (uint64_t i = 0; i < 1500 && late == 0; ++i) {
    if (!RoundTrip(i, leader.fd, 3s)) ++late;
  }
  done = true;
  sender.join();
  EXPECT_EQ(late, 0) << "a reply waited for its round's bound";
  EXPECT_LT(Clock::now() - start, 60s);
}

// The same, made certain: a caller holds the loop lock (the loop, woken by a post, waits
// for it outside its poll) while a leader's reply arrives, then sends again, which takes
// the reply's signal; nothing more arrives. The reply must be read (by the sender on its
// way out, the loop's next turn or the leader) well before the leader's bound.
TEST_F(ReactorLead, ReplyThatArrivedWhileACallerHeldTheLoopLock) {
  WakeFd leader;
  replies_.caller_fds = {leader.fd};
  for (uint64_t round = 1; round <= 3; ++round) {
    std::atomic<bool> sent{false};
    bool in_time = false;
    std::thread l([&] {
      while (!sent) std::this_thread::sleep_for(1ms);
      const auto until = Clock::now() + 3s;
      while (!replies_.Has(round) && Clock::now() < until && reactor_->Lead(leader.fd, until)) {
      }
      in_time = replies_.Has(round);
    });
    ASSERT_TRUE(reactor_->RunInline([&] {
      ASSERT_TRUE(reactor_->Post([] {}));
      std::this_thread::sleep_for(10ms);
      ASSERT_OK(dealer_->Send(Request(round)));
      sent = true;
      std::this_thread::sleep_for(50ms);  // the reply crosses both I/O threads
      ASSERT_OK(dealer_->Send(Request(100 + round, kSilent)));
    }));
    l.join();
    EXPECT_TRUE(in_time) << "round " << round;
  }
}

// Several callers lead and follow in turn on one socket; each gets its own replies.
TEST_F(ReactorLead, ConcurrentCallersEachGetTheirOwnReplies) {
  constexpr int kCallers = 4, kRounds = 400;
  std::vector<WakeFd> fds(kCallers);
  for (const WakeFd& w : fds) replies_.caller_fds.push_back(w.fd);
  std::atomic<int> late{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (uint64_t i = 0; i < kRounds; ++i) {
        if (!RoundTrip(c * kPerCaller + i, fds[c].fd)) ++late;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(late.load(), 0);
  std::lock_guard<std::mutex> l(replies_.mu);
  EXPECT_EQ(replies_.got.size(), size_t{kCallers * kRounds});
}

// A leader asleep on a request that gets no reply: Stop wakes it, and afterwards
// neither Lead nor RunInline touches the closed sockets.
TEST_F(ReactorLead, StopWakesALeaderAndEndsLeading) {
  WakeFd leader;
  ASSERT_TRUE(reactor_->RunInline([&] { ASSERT_OK(dealer_->Send(Request(7, kSilent))); }));
  std::atomic<bool> led_out{false};
  const auto start = Clock::now();
  std::thread t([&] {
    const auto until = Clock::now() + 30s;
    while (Clock::now() < until && reactor_->Lead(leader.fd, until)) {
    }
    led_out = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(led_out.load());
  reactor_->Stop();
  t.join();
  EXPECT_LT(Clock::now() - start, 10s) << "the leader slept through Stop";
  EXPECT_FALSE(reactor_->Lead(leader.fd, Clock::now() + 1s));
  bool ran = false;
  EXPECT_FALSE(reactor_->RunInline([&] { ran = true; }));
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace tessera::wire
