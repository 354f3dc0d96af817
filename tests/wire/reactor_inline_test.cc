// Reactor::RunInline (ReactorOptions::inline_runs): a task runs on the calling thread
// only while the loop waits, never beside the loop; and messages that arrive while such
// tasks use the sockets are all still handled (the loop waits on ZMQ_FD, whose edge a
// task's send can consume).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/testutil/testutil.h"
#include "wire/reactor.h"

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Reactor> MakeInlineReactor(bool inline_runs = true) {
  ReactorOptions o;
  o.inline_runs = inline_runs;
  auto r = Reactor::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// RunInline until it takes the task (the loop may be between turns), for up to 10 s.
bool RunInlineSoon(Reactor& r, const Reactor::Task& task) {
  const auto until = Clock::now() + 10s;
  while (Clock::now() < until) {
    if (r.RunInline(task)) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

TEST(ReactorInline, RunsOnTheCallingThreadWhileTheLoopWaits) {
  auto reactor = MakeInlineReactor();
  ASSERT_OK(reactor->Start());
  std::thread::id ran_on;
  ASSERT_TRUE(RunInlineSoon(*reactor, [&] { ran_on = std::this_thread::get_id(); }));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  // Posted tasks and timers still run on the loop thread.
  std::promise<bool> on_loop;
  ASSERT_TRUE(reactor->Post([&] { on_loop.set_value(reactor->InLoopThread()); }));
  auto f = on_loop.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f.get());
  reactor->Stop();
}

TEST(ReactorInline, RefusedWithoutTheOptionBeforeStartAndAfterStop) {
  bool ran = false;
  auto plain = MakeInlineReactor(false);
  ASSERT_OK(plain->Start());
  EXPECT_FALSE(plain->RunInline([&] { ran = true; }));
  auto r = MakeInlineReactor();
  EXPECT_FALSE(r->RunInline([&] { ran = true; })) << "before Start";
  ASSERT_OK(r->Start());
  r->Stop();
  EXPECT_FALSE(r->RunInline([&] { ran = true; })) << "after Stop";
  EXPECT_FALSE(ran);
}

TEST(ReactorInline, RefusedWithoutBlockingWhileTheLoopRunsATask) {
  auto reactor = MakeInlineReactor();
  ASSERT_OK(reactor->Start());
  std::promise<void> entered, gate;
  std::shared_future<void> open = gate.get_future().share();
  ASSERT_TRUE(reactor->Post([&entered, open] {
    entered.set_value();
    open.wait();
  }));
  ASSERT_EQ(entered.get_future().wait_for(10s), std::future_status::ready);
  bool ran = false;
  const auto t0 = Clock::now();
  EXPECT_FALSE(reactor->RunInline([&] { ran = true; }));
  EXPECT_LT(Clock::now() - t0, 1s) << "RunInline must not wait for the loop";
  EXPECT_FALSE(ran);
  gate.set_value();
  reactor->Stop();
}

TEST(ReactorInline, EveryReplyIsHandledWhileTasksSendInline) {
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  // Echo side: two replies per request, so replies keep arriving while the next sends run.
  auto router = Socket::Create(*ctx, SocketType::kRouter);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto echo = MakeInlineReactor(false);
  echo->AddSocket(std::move(router).value(), [](Socket& s, InMessage&& req) {
    for (int k = 0; k < 2; ++k) s.Send(MakeReply(req, Op::HEARTBEAT)).IgnoreError();
  });
  ASSERT_OK(echo->Start());

  auto reactor = MakeInlineReactor();
  auto dealer = Socket::Create(*ctx, SocketType::kDealer);
  ASSERT_TRUE(dealer.ok());
  ASSERT_OK((*dealer)->Connect(*ep));
  constexpr int kRequests = 2000;
  std::atomic<int> replies{0};
  std::promise<void> all;
  Socket* d = reactor->AddSocket(std::move(dealer).value(), [&](Socket&, InMessage&&) {
    if (++replies == 2 * kRequests) all.set_value();
  });
  ASSERT_OK(reactor->Start());
  int inline_sends = 0;
  const auto deadline = Clock::now() + 30s;
  for (int i = 0; i < kRequests; ++i) {
    Reactor::Task send = [d, i] {
      OutMessage m(Op::HEARTBEAT);
      m.SetRequestId(static_cast<uint64_t>(i) + 1);
      d->Send(std::move(m)).IgnoreError();
    };
    if (reactor->RunInline(send)) {
      ++inline_sends;
    } else {
      ASSERT_TRUE(reactor->Post(std::move(send)));
    }
    // A bounded window (well under the high-water marks), so no send ever blocks.
    while (2 * (i + 1) - replies.load() > 200) {
      ASSERT_LT(Clock::now(), deadline) << replies.load() << " of " << 2 * (i + 1) << " replies handled (" << inline_sends
                                        << " sent inline): a reply was not noticed";
      std::this_thread::sleep_for(50us);
    }
  }
  auto f = all.get_future();
  ASSERT_EQ(f.wait_until(deadline), std::future_status::ready)
      << replies.load() << " of " << 2 * kRequests << " replies handled (" << inline_sends << " sent inline)";
  EXPECT_GT(inline_sends, 0) << "no send ran inline: the test did not exercise RunInline";
  reactor->Stop();
  echo->Stop();
}

}  // namespace
}  // namespace tessera::wire
