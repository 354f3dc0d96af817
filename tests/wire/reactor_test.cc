// Reactor: posted tasks and timers run on the loop thread, handlers serve sockets,
// Stop joins.
#include "wire/reactor.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/testutil/testutil.h"

namespace tessera::wire {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Reactor> MakeReactor() {
  auto r = Reactor::Create();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(Reactor, PostRunsTheTaskOnTheLoopThread) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::promise<std::pair<std::thread::id, bool>> ran;
  ASSERT_TRUE(reactor->Post([&] {
    ran.set_value({std::this_thread::get_id(), reactor->InLoopThread()});
  }));
  auto f = ran.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  auto [id, in_loop] = f.get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(in_loop);
  EXPECT_FALSE(reactor->InLoopThread());
}

TEST(Reactor, PostedTasksRunInPostingOrder) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::vector<int> order;
  std::promise<void> done;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(reactor->Post([&order, i] { order.push_back(i); }));
  ASSERT_TRUE(reactor->Post([&] { done.set_value(); }));
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i) << "index " << i;
}

TEST(Reactor, RunAfterFiresOnceNoEarlierThanItsDelay) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::atomic<int> runs{0};
  std::promise<Clock::time_point> fired;
  const auto t0 = Clock::now();
  reactor->RunAfter(50ms, [&] {
    if (runs++ == 0) fired.set_value(Clock::now());
  });
  auto f = fired.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_GE(f.get() - t0, 50ms);
  // Give a wrongly periodic timer a chance to fire again, then check it did not.
  std::promise<void> later;
  reactor->RunAfter(120ms, [&] { later.set_value(); });
  ASSERT_EQ(later.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(runs.load(), 1);
}

TEST(Reactor, RunEveryRepeatsUntilCancelled) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::atomic<int> runs{0};
  std::promise<void> three;
  std::atomic<Reactor::TimerId> id{0};  // set here, read on the loop thread
  id = reactor->RunEvery(10ms, [&] {
    if (++runs == 3) {
      reactor->Cancel(id);  // from inside its own callback
      three.set_value();
    }
  });
  ASSERT_EQ(three.get_future().wait_for(10s), std::future_status::ready);
  std::promise<void> later;
  reactor->RunAfter(80ms, [&] { later.set_value(); });
  ASSERT_EQ(later.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(runs.load(), 3);
}

TEST(Reactor, CancelledTimerNeverRuns) {
  auto reactor = MakeReactor();
  std::atomic<bool> ran{false};
  Reactor::TimerId id = reactor->RunAfter(30ms, [&] { ran = true; });
  reactor->Cancel(id);
  ASSERT_OK(reactor->Start());
  std::promise<void> later;
  reactor->RunAfter(100ms, [&] { later.set_value(); });
  ASSERT_EQ(later.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(ran.load());
}

TEST(Reactor, StopRunsAlreadyPostedTasksJoinsAndRefusesNewOnes) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::atomic<int> ran{0};
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  // Block the loop so the next tasks are still queued when Stop() is called.
  ASSERT_TRUE(reactor->Post([open] { open.wait(); }));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(reactor->Post([&] { ++ran; }));
  std::thread stopper([&] { reactor->Stop(); });
  // Stop() refuses new posts before it joins; wait until it has begun.
  while (reactor->Post([] {})) std::this_thread::sleep_for(1ms);
  gate.set_value();
  stopper.join();
  EXPECT_EQ(ran.load(), 5);
  EXPECT_FALSE(reactor->Post([&] { ++ran; }));
  EXPECT_EQ(ran.load(), 5);
  EXPECT_EQ(reactor->Start().code(), StatusCode::kFailedPrecondition);
}

TEST(Reactor, StopFromTheLoopThreadDoesNotDeadlock) {
  auto reactor = MakeReactor();
  ASSERT_OK(reactor->Start());
  std::promise<void> stopped;
  ASSERT_TRUE(reactor->Post([&] {
    reactor->Stop();  // only requests the stop; the destructor joins
    stopped.set_value();
  }));
  ASSERT_EQ(stopped.get_future().wait_for(10s), std::future_status::ready);
  reactor.reset();  // joins without hanging
}

TEST(Reactor, HandlerServesItsSocketAndMayReplyOnIt) {
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  auto router = Socket::Create(*ctx, SocketType::kRouter);
  ASSERT_TRUE(router.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  auto reactor = MakeReactor();
  std::atomic<bool> on_loop{true};
  reactor->AddSocket(std::move(router).value(), [&](Socket& s, InMessage&& req) {
    if (!reactor->InLoopThread()) on_loop = false;
    OutMessage rep = MakeReply(req, Op::HEARTBEAT);
    rep.header().getBody().initHeartbeat().setStep(req.step() + 1);
    s.Send(std::move(rep)).IgnoreError();
  });
  ASSERT_OK(reactor->Start());

  auto dealer = Socket::Create(*ctx, SocketType::kDealer);
  ASSERT_TRUE(dealer.ok());
  ASSERT_OK((*dealer)->Connect(*ep));
  for (int i = 0; i < 20; ++i) {
    OutMessage m(Op::HEARTBEAT);
    m.SetStep(i);
    Result<InMessage> r = Call(**dealer, std::move(m), Deadline::FromMillis(10000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->header().getBody().getHeartbeat().getStep(), i + 1) << "request " << i;
  }
  EXPECT_TRUE(on_loop.load());
  reactor->Stop();
}

TEST(Reactor, PostedTaskCanSendOnAnOwnedSocket) {
  auto ctx = Context::Create();
  ASSERT_TRUE(ctx.ok());
  auto router = Socket::Create(*ctx, SocketType::kRouter);
  auto dealer = Socket::Create(*ctx, SocketType::kDealer);
  ASSERT_TRUE(router.ok() && dealer.ok());
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  ASSERT_TRUE(ep.ok());
  ASSERT_OK((*dealer)->Connect(*ep));
  auto reactor = MakeReactor();
  std::promise<uint64_t> reply_id;
  Socket* d = reactor->AddSocket(std::move(dealer).value(), [&](Socket&, InMessage&& m) {
    reply_id.set_value(m.request_id());
  });
  ASSERT_OK(reactor->Start());
  // Another thread asks the loop to send on the DEALER it owns.
  ASSERT_TRUE(reactor->Post([d] {
    OutMessage m(Op::HEARTBEAT);
    m.SetRequestId(11);
    d->Send(std::move(m)).IgnoreError();
  }));
  Result<InMessage> req = (*router)->Recv(Deadline::FromMillis(10000));
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->request_id(), 11u);
  ASSERT_OK((*router)->Send(MakeReply(*req, Op::HEARTBEAT)));
  auto f = reply_id.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), 11u);
  reactor->Stop();
}

}  // namespace
}  // namespace tessera::wire
