// Leader/follower in the worker (ClientOptions::caller_leads, issue 17): a thread that
// waits on a Handle reads the server connection itself, through a real coordinator,
// server and workers in this process (real ZeroMQ sockets over TCP, --shm=off). Several
// threads of one worker each get their own values; a waiter leading when its request
// times out on the worker's loop thread, or when the job stops under it (FailAll), is
// woken at once rather than at the end of its Wait's bound.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "tests/ps/inproc_job.h"

DECLARE_string(shm);

namespace tessera {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kElements = 1024;  // 4 KiB: one chunk, one request per push+pull

ParamSpec Sgd(int i) {
  ParamSpec p;
  p.name = "p" + std::to_string(i);
  p.shape = {kElements};
  p.init = InitKind::kConstant;
  p.init_scale = 0.5f;
  p.optimizer.kind = OptimizerKind::kSgd;
  p.optimizer.lr = 0.5f;
  return p;
}

class LeaderJob : public ::testing::Test {
 protected:
  void SetUp() override { FLAGS_shm = "off"; }
  void TearDown() override { FLAGS_shm = "auto"; }
};

// Four threads, one parameter each, push+pull in turn: every pull must carry that
// thread's own parameter after its own pushes (a reply completed for the wrong request
// would carry another parameter's values, or none).
TEST_F(LeaderJob, ConcurrentCallersEachGetTheirOwnValues) {
  constexpr int kThreads = 4, kSteps = 150;
  std::vector<ParamSpec> ps;
  for (int i = 0; i < kThreads; ++i) ps.push_back(Sgd(i));
  testing::InProcJobOptions o;
  o.caller_leads = true;
  testing::InProcJob job(o, ps);
  std::vector<std::thread> threads;
  std::vector<int> wrong(kThreads, 0);
  const auto start = Clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> g(kElements, 0.001f * static_cast<float>(t + 1)), w(kElements);
      float expect = 0.5f;
      for (int s = 0; s < kSteps && wrong[t] == 0; ++s) {
        Status st = job.client().PushPull(static_cast<uint32_t>(t), testing::InProcJob::View(g),
                                          testing::InProcJob::View(w), s).Wait(5s);
        expect -= 0.5f * g[0];
        if (!st.ok() || std::fabs(w[0] - expect) > 1e-4f || w[kElements - 1] != w[0]) ++wrong[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  // About 0.1 s here; a waiter that no completion wakes takes seconds per step.
  EXPECT_LT(Clock::now() - start, 30s);
}

// bsp, two workers: worker 0's pull of step 1 waits for worker 1's push of step 0, which
// never comes. The request times out on the worker's loop thread (Tick) while worker 0's
// thread leads: that thread must be woken then, not at its Wait's 30 s.
TEST_F(LeaderJob, RequestTimeoutWakesTheLeader) {
  testing::InProcJobOptions o;
  o.caller_leads = true;
  o.sync = SyncMode::kBsp;
  o.workers = 2;
  o.request_timeout = 1s;
  testing::InProcJob job(o, {Sgd(0)});
  std::vector<float> g(kElements, 0.01f), w(kElements);
  ASSERT_OK(job.client(0).Push(0, testing::InProcJob::View(g), 0).Wait(30s));
  const auto start = Clock::now();
  Status st = job.client(0).Pull(0, testing::InProcJob::View(w), 1).Wait(30s);
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_NE(st.message().find("got no reply in time"), std::string::npos) << st.ToString();
  EXPECT_LT(Clock::now() - start, 10s);
}

// The same wait, ended by the job stopping (worker 1 fails): the coordinator's Shutdown
// fails every pending request on worker 0's loop thread (FailAll) while its caller leads.
TEST_F(LeaderJob, JobStoppingWakesTheLeader) {
  testing::InProcJobOptions o;
  o.caller_leads = true;
  o.sync = SyncMode::kBsp;
  o.workers = 2;
  testing::InProcJob job(o, {Sgd(0)});
  std::vector<float> g(kElements, 0.01f), w(kElements);
  ASSERT_OK(job.client(0).Push(0, testing::InProcJob::View(g), 0).Wait(30s));
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    job.client(1).Finish(3, "worker 1 failed on purpose").IgnoreError();
  });
  const auto start = Clock::now();
  Status st = job.client(0).Pull(0, testing::InProcJob::View(w), 1).Wait(30s);
  stopper.join();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_LT(Clock::now() - start, 10s);
}

}  // namespace
}  // namespace tessera
