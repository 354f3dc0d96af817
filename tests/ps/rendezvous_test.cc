// The coordinator's rendezvous table (how workers share an NCCL unique id): a running
// coordinator, one server and three workers in this process, talking over real ZeroMQ
// sockets on 127.0.0.1.
#include <gtest/gtest.h>

#include <future>
#include <random>
#include <thread>

#include "coordinator/coordinator.h"
#include "coordinator/rendezvous_store.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "worker/client.h"
#include "worker/rendezvous.h"

namespace tessera {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kJob = 777;
constexpr int kWorkers = 3;

class RendezvousJob : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_ = *wire::Context::Create();
    CoordinatorOptions co;
    co.job_id = kJob;
    co.num_servers = 1;
    co.num_workers = kWorkers;
    auto c = Coordinator::Start(co, ctx_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    coord_ = std::move(c).value();
    paramserver::ServerOptions so;
    so.coordinator = coord_->endpoint();
    so.job_id = kJob;
    so.rank = 1;
    so.num_servers = 1;
    so.num_workers = kWorkers;
    auto s = paramserver::ParamServer::Start(so, ctx_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    for (int w = 0; w < kWorkers; ++w) {
      worker::ClientOptions wo;
      wo.coordinator = coord_->endpoint();
      wo.job_id = kJob;
      wo.rank = 2 + w;
      wo.num_servers = 1;
      wo.num_workers = kWorkers;
      auto cl = worker::Client::Connect(wo, ctx_);
      ASSERT_TRUE(cl.ok()) << cl.status().ToString();
      clients_.push_back(std::move(cl).value());
    }
  }

  void TearDown() override {
    for (auto& c : clients_) c->Finish(0, "test done").IgnoreError();
    if (coord_) coord_->Wait(10s);
    if (server_) server_->Wait(10s);
  }

  static std::string RandomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
  }

  std::shared_ptr<wire::Context> ctx_;
  std::unique_ptr<Coordinator> coord_;
  std::unique_ptr<paramserver::ParamServer> server_;
  std::vector<std::unique_ptr<worker::Client>> clients_;
};

// Workers 1 and 2 ask before worker 0 has made the value: they wait for it and all three
// end with worker 0's bytes (binary, with NULs, like an NCCL id).
TEST_F(RendezvousJob, EveryWorkerGetsWorkerZerosBytes) {
  const std::string id = RandomBytes(128, 1);
  std::vector<std::future<Result<std::string>>> got;
  for (int w = 1; w < kWorkers; ++w) {
    got.push_back(std::async(std::launch::async, [&, w] {
      return worker::ShareFromWorkerZero(*clients_[w], "nccl_unique_id",
                                         [] { return Result<std::string>(Status::Internal("only worker 0 makes it")); },
                                         10s);
    }));
  }
  std::this_thread::sleep_for(200ms);
  int made = 0;
  auto mine = worker::ShareFromWorkerZero(*clients_[0], "nccl_unique_id", [&]() -> Result<std::string> {
    ++made;
    return id;
  }, 10s);
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  EXPECT_EQ(*mine, id);
  EXPECT_EQ(made, 1);
  for (auto& f : got) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, id);
  }
}

// Write-once: the same bytes again are fine (a retried put), other bytes are refused and
// the stored value stays.
TEST_F(RendezvousJob, ADifferentValueCannotReplaceTheFirst) {
  ASSERT_OK(clients_[0]->RendezvousPut("k", "first", 5s));
  EXPECT_OK(clients_[0]->RendezvousPut("k", "first", 5s));
  Status st = clients_[1]->RendezvousPut("k", "second", 5s);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("already holds a different value, put by worker 0"), std::string::npos)
      << st.ToString();
  auto r = clients_[2]->RendezvousGet("k", 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "first");
  // The refusal is a reply, not a failure of the job: every worker is still healthy.
  for (auto& c : clients_) EXPECT_OK(c->health());
}

// Bad requests are refused with a reason and the coordinator goes on serving.
TEST_F(RendezvousJob, BadKeysAndOversizedValuesAreRefused) {
  Status st = clients_[0]->RendezvousPut("", "x", 5s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  st = clients_[0]->RendezvousPut(std::string(129, 'k'), "x", 5s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  st = clients_[0]->RendezvousPut("big", std::string(RendezvousStore::kMaxValueBytes + 1, 'v'), 5s);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_NE(st.message().find("at most 4096"), std::string::npos) << st.ToString();
  EXPECT_EQ(clients_[1]->RendezvousGet("", 1s).status().code(), StatusCode::kInvalidArgument);
  // Exactly the limit is accepted.
  const std::string max = RandomBytes(RendezvousStore::kMaxValueBytes, 2);
  ASSERT_OK(clients_[0]->RendezvousPut("big", max, 5s));
  auto r = clients_[1]->RendezvousGet("big", 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, max);
}

// Nobody puts the key: the get ends with TimedOut naming it, within its timeout.
TEST_F(RendezvousJob, AGetOfAKeyNobodyPutsTimesOut) {
  auto start = std::chrono::steady_clock::now();
  auto r = clients_[1]->RendezvousGet("never", 500ms);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'never'"), std::string::npos) << r.status().ToString();
  EXPECT_GE(s, 0.45);
  EXPECT_LT(s, 3.0);
}

// Worker 0 failing to make the value fails worker 0 with that error (and puts nothing).
TEST_F(RendezvousJob, WorkerZerosErrorIsReturnedAndNothingIsPut) {
  auto r = worker::ShareFromWorkerZero(*clients_[0], "nccl_unique_id",
                                       [] { return Result<std::string>(Status::Unavailable("no CUDA device")); }, 5s);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(clients_[1]->RendezvousGet("nccl_unique_id", 300ms).status().code(), StatusCode::kTimedOut);
}

TEST(RendezvousStore, TheTableIsBounded) {
  RendezvousStore s;
  for (size_t i = 0; i < RendezvousStore::kMaxKeys; ++i) ASSERT_OK(s.Put("k" + std::to_string(i), "v", "worker 0"));
  Status st = s.Put("one-more", "v", "worker 1");
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_OK(s.Put("k0", "v", "worker 1"));  // an existing key with the same value still is
  EXPECT_EQ(s.size(), RendezvousStore::kMaxKeys);
  EXPECT_FALSE(s.Get("one-more").has_value());
}

// Once the coordinator stopped the job (here an abort with the preemption code), a request
// to it fails at once with the reason. A worker that reached a barrier after the SHUTDOWN
// (a Python script between steps when a preemption stopped the job) used to wait the
// barrier's whole timeout for an answer the departed coordinator could not give, and held
// up the job's exit 75 under Slurm (SlurmJob.PythonScriptIsPreempted...).
TEST_F(RendezvousJob, RequestsAfterTheJobStoppedFailAtOnce) {
  coord_->Abort("test: preempted", 75);
  for (int i = 0; i < 200 && clients_[1]->health().ok(); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_FALSE(clients_[1]->health().ok()) << "no SHUTDOWN reached worker 1";
  EXPECT_EQ(clients_[1]->requested_exit_code(), 75);

  auto t0 = std::chrono::steady_clock::now();
  Status barrier = clients_[1]->Barrier(60s);
  Status put = clients_[2]->RendezvousPut("late", "x", 60s);
  auto get = clients_[0]->RendezvousGet("late", 60s);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(barrier.code(), StatusCode::kAborted) << barrier.ToString();
  EXPECT_NE(barrier.ToString().find("test: preempted"), std::string::npos) << barrier.ToString();
  EXPECT_FALSE(put.ok());
  EXPECT_FALSE(get.ok());
  EXPECT_LT(took, 5s) << "requests after the stop waited for a coordinator that is gone";
}

}  // namespace
}  // namespace tessera
