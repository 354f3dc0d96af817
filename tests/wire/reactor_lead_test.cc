// Leader/follower on the reactor (wire/reactor.h, "The loop lock"): callers send with
// RunInline and read their replies with Lead while the loop keeps watching the same
// sockets, against a ROUTER peer on its own context and thread over TCP. Each round is
// bounded: a reply left queued behind a quiet ZMQ_FD (a lost wake-up) fails the round
// after a few seconds instead of hanging.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "wire/reactor.h"

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kSilent = 1;   // a request's step: the peer answers nothing
constexpr int64_t kDelayed = 2;  // a request's step: the peer answers after kDelay
constexpr auto kDelay = std::chrono::milliseconds(300);

// Answers each request (step 0) with one reply carrying its id; drops silent ones.
class Peer {
 public:
  Peer() {
    ctx_ = Context::Create().value();
    router_ = Socket::Create(ctx_, SocketType::kRouter).value();
    endpoint_ = router_->Bind("tcp://127.0.0.1:*").value();
    thread_ = std::thread([this] {
      std::vector<std::pair<Clock::time_point, OutMessage>> later;
      while (!stop_) {
        for (auto it = later.begin(); it != later.end();) {
          if (Clock::now() < it->first) {
            ++it;
            continue;
          }
          EXPECT_OK(router_->Send(std::move(it->second)));
          it = later.erase(it);
        }
        Result<InMessage> req = router_->Recv(Deadline::FromMillis(later.empty() ? 20 : 5));
        if (!req.ok() || req->step() == kSilent) continue;
        if (req->step() == kDelayed) {
          later.emplace_back(Clock::now() + kDelay, MakeReply(*req, Op::HEARTBEAT));
          continue;
        }
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

// The eventfd of the caller on this thread: a reply it handles itself wakes nobody, as
// Handle::WakeLeader skips the completing leader.
thread_local int tl_caller_fd = -1;

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
    if (c < caller_fds.size() && caller_fds[c] != tl_caller_fd) {
      EXPECT_EQ(write(caller_fds[c], &one, sizeof(one)), 8);
    }
  }
  bool Has(uint64_t id) {
    std::lock_guard<std::mutex> l(mu);
    return got.count(id) != 0;
  }
};

// The voluntary context switches of this process's reactor loop thread so far (the peer
// runs no reactor): how often the loop slept and was woken.
int64_t LoopThreadSleeps() {
  int64_t n = -1;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || name != "tessera-reactor") continue;
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) n = std::stoll(line.substr(24));
    }
  }
  return n;
}

class ReactorLead : public ::testing::Test {
 protected:
  void SetUp() override { StartReactor({}, /*blind=*/false); }
  // `blind`: the loop leaves the socket to a leader (Reactor::SetRepliesAwaited), told
  // that replies are awaited while requests sent here are unanswered.
  void StartReactor(ReactorOptions options, bool blind) {
    reactor_ = Reactor::Create(options).value();
    SocketOptions so;
    // Without shared memory: its handshake would wake a leader early (the same-host
    // case, a leader on the local link, is tests/wire/reactor_lead_link_test.cc).
    if (blind) so.shm.mode = ShmMode::kOff;
    auto d = Socket::Create(ctx_, SocketType::kDealer, so).value();
    ASSERT_OK(d->Connect(peer_.endpoint()));
    dealer_ = reactor_->AddSocket(std::move(d),
                                  [this](Socket&, InMessage&& m) {
                                    --awaited_;
                                    replies_.Add(m.request_id());
                                  },
                                  nullptr, /*leadable=*/true);
    if (blind) reactor_->SetRepliesAwaited([this] { return awaited_.load() > 0; });
    ASSERT_OK(reactor_->Start());
  }
  void TearDown() override { reactor_->Stop(); }
  void Restart(ReactorOptions options, bool blind) {
    reactor_->Stop();
    awaited_ = 0;
    StartReactor(options, blind);
  }

  // Makes the loop turn while a thread leads, so that it goes to sleep blind; runs
  // `before_leaving`, then lets the leader leave.
  void BlindTheLoop(const std::function<void()>& before_leaving) {
    WakeFd leader;
    std::atomic<bool> leading{false};
    std::thread l([&] {
      leading = true;
      reactor_->Lead(leader.fd, Clock::now() + 10s);
    });
    while (!leading) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);  // asleep in Lead's poll
    ASSERT_TRUE(reactor_->Post([] {}));
    std::this_thread::sleep_for(50ms);  // the loop turned and sleeps again
    before_leaving();
    const uint64_t one = 1;
    ASSERT_EQ(write(leader.fd, &one, sizeof(one)), 8);
    l.join();
  }

  void SendInline(uint64_t id, int64_t step = 0) {
    if (step != kSilent) ++awaited_;
    EXPECT_TRUE(reactor_->RunInline([&] { EXPECT_OK(dealer_->Send(Request(id, step))); }));
  }
  bool WaitFor(uint64_t id, Duration limit) {
    const auto until = Clock::now() + limit;
    while (!replies_.Has(id) && Clock::now() < until) std::this_thread::sleep_for(1ms);
    return replies_.Has(id);
  }

  // Sends request `id` itself, then leads until its reply is in; false after `limit`.
  bool RoundTrip(uint64_t id, int fd, Duration limit = 5s) {
    tl_caller_fd = fd;
    SendInline(id);
    const auto until = Clock::now() + limit;
    while (!replies_.Has(id)) {
      if (Clock::now() >= until || !reactor_->Lead(fd, until)) return replies_.Has(id);
    }
    return true;
  }

  // On a blind loop, a caller leads kLedRounds round trips; returns how often the loop
  // slept meanwhile. `one_unanswered`: a request whose reply never comes stays awaited.
  static constexpr int kLedRounds = 400;
  int64_t LoopSleepsOverLedRoundTrips(bool one_unanswered = false) {
    ReactorOptions o;
    o.blind_sleep_ms = 25;  // the bound's own wake-ups: a few over these rounds
    Restart(o, /*blind=*/true);
    WakeFd caller;
    replies_.caller_fds = {caller.fd};
    if (one_unanswered) {
      ++awaited_;
      SendInline(kPerCaller * 9, kSilent);
    }
    // A failed round counts as more sleeps than any bound.
    constexpr int64_t kFailed = int64_t{1} << 40;
    if (!RoundTrip(0, caller.fd)) return kFailed;
    const int64_t before = LoopThreadSleeps();
    if (before < 0) return kFailed;
    for (uint64_t i = 1; i <= kLedRounds; ++i) {
      if (!RoundTrip(i, caller.fd)) return kFailed;
    }
    return LoopThreadSleeps() - before;
  }

  Peer peer_;
  std::shared_ptr<Context> ctx_ = Context::Create().value();
  std::unique_ptr<Reactor> reactor_;
  Socket* dealer_ = nullptr;
  Replies replies_;
  std::atomic<int> awaited_{0};
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

// Issue 17: with a caller leading each round trip, the loop no longer wakes on every
// reply beside it (it did once per round trip: about 400 sleeps here).
TEST_F(ReactorLead, BlindLoopSleepsThroughRepliesACallerLeadsFor) {
  EXPECT_LT(LoopSleepsOverLedRoundTrips(), kLedRounds / 4) << "the loop woke beside the leader";
}

// A request sent while the loop sleeps blind and nobody leads: the loop reads its reply
// within its bounded blind sleep (this reactor has no timers to wake it otherwise).
TEST_F(ReactorLead, BlindLoopReadsAReplyNobodyLeadsFor) {
  Restart({}, /*blind=*/true);
  BlindTheLoop([] {});
  SendInline(1);
  EXPECT_TRUE(WaitFor(1, 3s));
}

// The last leader leaves while a reply is still awaited: it does not wake the blind loop
// (reactor.h), which reads the reply within its bounded blind sleep of its arrival.
TEST_F(ReactorLead, ReplyAwaitedAfterTheLastLeaderLeftIsReadWithinTheBlindBound) {
  ReactorOptions o;
  o.blind_sleep_ms = 200;
  Restart(o, /*blind=*/true);
  BlindTheLoop([this] { SendInline(1, kDelayed); });
  EXPECT_TRUE(WaitFor(1, kDelay + 3s));
}

// Issue 17 (lead36): a caller leading through its replies one turn at a time while
// other requests are still awaited (a training step's dozen) leaves the blind loop
// asleep. A leaving leader woke it there: once per round trip here, and the loop then
// read replies beside the leader.
TEST_F(ReactorLead, LeaderTurnsWhileOtherRepliesAreAwaitedLeaveTheLoopAsleep) {
  EXPECT_LT(LoopSleepsOverLedRoundTrips(/*one_unanswered=*/true), kLedRounds / 4)
      << "the loop woke as the leader left its turns";
}

// TryRunInline runs on the calling thread while the loop sleeps, and refuses at once,
// running nothing, while the loop holds its lock (a turn: the caller posts instead of
// sleeping on that lock).
TEST_F(ReactorLead, TryRunInlineRefusesAtOnceWhileTheLoopRunsATurn) {
  const auto caller = std::this_thread::get_id();
  std::thread::id ran_on;
  std::this_thread::sleep_for(20ms);  // the loop asleep in its poll
  ASSERT_TRUE(reactor_->TryRunInline([&] { ran_on = std::this_thread::get_id(); }));
  EXPECT_EQ(ran_on, caller);
  std::promise<void> release;
  std::atomic<bool> in_turn{false};
  ASSERT_TRUE(reactor_->Post([&, done = release.get_future().share()] {
    in_turn = true;
    done.wait_for(3s);
  }));
  while (!in_turn) std::this_thread::sleep_for(1ms);
  bool ran = false;
  const auto start = Clock::now();
  EXPECT_FALSE(reactor_->TryRunInline([&] { ran = true; }));
  EXPECT_LT(Clock::now() - start, 1s) << "it waited for the loop's lock";
  EXPECT_FALSE(ran);
  release.set_value();
}

}  // namespace
}  // namespace tessera::wire
