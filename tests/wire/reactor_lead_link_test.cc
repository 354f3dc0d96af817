// Leader/follower over a same-host local link (wire/reactor.h, issue 17): a caller sends
// its push+pull itself (RunInline) and reads the reply itself (Lead) from the link's fd,
// while the client's loop sleeps blind, against an echo ROUTER on its own reactor over
// real ZeroMQ sockets, shared-memory arenas and Unix-domain sockets. The loop's blind
// sleep is made long (kBlindMs), so a reply no leader reads (a lost wake-up) fails its
// round's bound instead of hiding behind the loop.
#include <gflags/gflags.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/wire/link_util.h"

DECLARE_bool(shm_link);

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;
using testing::EchoServer;
using testing::OnLoop;

constexpr int kBlindMs = 10000;
constexpr auto kRoundBound = 3s;  // far below kBlindMs, far above a loaded round trip
constexpr size_t kBytes = 256 << 10;

struct WakeFd {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~WakeFd() { close(fd); }
};

// The voluntary context switches of the client's loop thread so far: how often it slept
// and was woken.
int64_t ClientLoopSleeps(pid_t loop_tid) {
  std::ifstream status("/proc/self/task/" + std::to_string(loop_tid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stoll(line.substr(24));
  }
  return -1;
}

class ReactorLeadLink : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = FLAGS_shm_link;
    FLAGS_shm_link = true;
    SocketOptions o;
    o.shm.mode = ShmMode::kAuto;
    server_ = EchoServer::Start(ctx_server_, o);
    ASSERT_NE(server_, nullptr);
    ReactorOptions ro;
    ro.blind_sleep_ms = kBlindMs;
    reactor_ = Reactor::Create(ro).value();
    o.shm.accept_streamed = true;
    auto d = Socket::Create(ctx_, SocketType::kDealer, o).value();
    ASSERT_OK(d->Connect(server_->endpoint));
    dealer_ = reactor_->AddSocket(
        std::move(d), [this](Socket&, InMessage&& m) { OnReply(std::move(m)); }, nullptr, /*leadable=*/true);
    // Until armed_, replies count as awaited: the loop watches everything and sets up
    // the shared memory and the link.
    reactor_->SetRepliesAwaited([this] { return !armed_.load() || awaited_.load() > 0; });
    ASSERT_OK(reactor_->Start());
    loop_tid_ = OnLoop(*reactor_, [] { return static_cast<pid_t>(gettid()); });
  }
  void TearDown() override {
    if (reactor_) reactor_->Stop();
    server_.reset();
    FLAGS_shm_link = saved_;
  }

  // Push+pulls (unstreamed, so the link carries requests and replies) until the link
  // carries both ways and the channel is on.
  bool WaitForLink() {
    const auto until = Clock::now() + 20s;
    for (uint64_t id = 1000000; Clock::now() < until; ++id) {
      if (!RoundTrip(id, -1, kRoundBound)) return false;
      const std::string state = OnLoop(*reactor_, [&] { return dealer_->link_state(); });
      const bool shm = OnLoop(*reactor_, [&] { return dealer_->shm_state() == "on"; });
      if (state == "on" && shm) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  // Sends push+pull `id` itself, then leads (wake_fd >= 0) or waits until its reply is
  // in; false after `bound`.
  bool RoundTrip(uint64_t id, int wake_fd, Duration bound) {
    OutMessage m = testing::PushPull(id, kBytes, /*streamable=*/false, id);
    ++awaited_;
    {
      std::lock_guard<std::mutex> l(mu_);
      waiter_fd_[id] = wake_fd;
    }
    EXPECT_TRUE(reactor_->RunInline([&] { EXPECT_OK(dealer_->Send(std::move(m))); }));
    const auto until = Clock::now() + bound;
    while (!Has(id) && Clock::now() < until) {
      if (wake_fd < 0 || !reactor_->Lead(wake_fd, until)) std::this_thread::sleep_for(1ms);
    }
    return Has(id);
  }

  bool Has(uint64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    return got_.count(id) != 0;
  }

  void OnReply(InMessage&& m) {
    const uint64_t id = m.request_id();
    bool intact = m.num_payloads() == 1 && m.payload(0).size() == kBytes;
    for (size_t i = 0; intact && i < kBytes; ++i) {
      intact = m.payload(0)[i] == (testing::PeerByte(i + id) ^ testing::kReplyMask);
    }
    std::lock_guard<std::mutex> l(mu_);
    got_[id] = std::this_thread::get_id();
    if (!intact) ++corrupt_;
    --awaited_;
    const auto it = waiter_fd_.find(id);
    // As Handle::WakeLeader: whoever completes a caller's request wakes it, unless it is
    // that caller (a leader reading its own reply).
    if (it != waiter_fd_.end() && it->second >= 0 && got_[id] != caller_of_.at(id)) {
      const uint64_t one = 1;
      EXPECT_EQ(write(it->second, &one, sizeof(one)), 8);
    }
  }

  bool saved_ = true;
  std::shared_ptr<Context> ctx_server_ = Context::Create().value();
  std::shared_ptr<Context> ctx_ = Context::Create().value();
  std::unique_ptr<EchoServer> server_;
  std::unique_ptr<Reactor> reactor_;
  Socket* dealer_ = nullptr;
  pid_t loop_tid_ = 0;
  std::atomic<bool> armed_{false};
  std::atomic<int> awaited_{0};
  std::mutex mu_;
  std::map<uint64_t, std::thread::id> got_;
  std::map<uint64_t, int> waiter_fd_;
  std::map<uint64_t, std::thread::id> caller_of_;
  int corrupt_ = 0;
};

// Issue 17: a caller leading its own same-host push+pulls reads every reply from the
// link on its own thread, and the blind loop sleeps through them. Before, the loop alone
// read the link (it woke on every reply, and handled it: a hand-off per request).
TEST_F(ReactorLeadLink, LeaderReadsSameHostRepliesFromTheLinkWhileTheLoopSleeps) {
  ASSERT_TRUE(WaitForLink());
  armed_ = true;
  WakeFd caller;
  constexpr int kWarmUp = 3, kRounds = 200;
  int64_t before = -1;
  int late = 0, off_thread = 0;
  for (uint64_t i = 1; i <= kWarmUp + kRounds && late == 0; ++i) {
    // The loop may still be awake from the set-up's last turn in the first rounds.
    if (i == kWarmUp + 1) {
      before = ClientLoopSleeps(loop_tid_);
      off_thread = 0;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      caller_of_[i] = std::this_thread::get_id();
    }
    if (!RoundTrip(i, caller.fd, kRoundBound)) {
      ++late;
      break;
    }
    std::lock_guard<std::mutex> l(mu_);
    if (got_[i] != std::this_thread::get_id()) ++off_thread;
  }
  ASSERT_EQ(late, 0) << "a reply waited past its round's bound (lost wake-up)";
  ASSERT_GE(before, 0);
  const int64_t sleeps = ClientLoopSleeps(loop_tid_) - before;
  EXPECT_EQ(off_thread, 0) << "replies handled by the loop, not the leading caller";
  EXPECT_LT(sleeps, kRounds / 4) << "the loop woke beside the leader";
  EXPECT_EQ(corrupt_, 0);
  EXPECT_EQ(OnLoop(*reactor_, [&] { return dealer_->link_state(); }), "on");
}

// Several callers lead and follow in turn from the first request on, while the shared
// memory and the link come up under them: a leader that listed the sockets' fds before
// a link existed must not leave the loop blind to that link (LeadableLinkPrint). Each
// round is bounded far below the blind sleep, so a reply nobody reads fails it.
TEST_F(ReactorLeadLink, CallersLeadingWhileTheLinkComesUpLoseNoReply) {
  armed_ = true;
  constexpr int kCallers = 3, kRounds = 150;
  std::vector<WakeFd> fds(kCallers);
  std::atomic<int> late{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (uint64_t i = 0; i < kRounds; ++i) {
        const uint64_t id = (c + 1) * 100000 + i;
        {
          std::lock_guard<std::mutex> l(mu_);
          caller_of_[id] = std::this_thread::get_id();
        }
        if (!RoundTrip(id, fds[c].fd, kRoundBound)) ++late;
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(late.load(), 0) << "a reply waited past its round's bound (lost wake-up)";
  EXPECT_EQ(corrupt_, 0);
  std::lock_guard<std::mutex> l(mu_);
  EXPECT_EQ(got_.size(), size_t{kCallers * kRounds});
  EXPECT_EQ(OnLoop(*reactor_, [&] { return dealer_->link_state(); }), "on");
}

}  // namespace
}  // namespace tessera::wire
