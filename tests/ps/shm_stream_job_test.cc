// Streamed same-host push and push+pull (wire/shm_stream.h) through a real coordinator, server and
// worker in this process (real ZeroMQ sockets and shared-memory arenas): the values are
// bitwise those of the unstreamed path for every optimizer (and for a clipped parameter,
// which waits for the whole gradient), and a worker whose copy stalls or scribbles its
// progress word fails that one request (after the server's deadline, or at once) while
// the server keeps serving.
#include <gflags/gflags.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "common/metrics_registry.h"
#include "coordinator/coordinator.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "wire/shm_stream.h"
#include "wire/socket.h"
#include "worker/client.h"

DECLARE_bool(shm_stream);
DECLARE_int64(shm_stream_timeout_ms);

namespace tessera {
namespace {

constexpr uint64_t kJob = 4343;
constexpr int64_t kElements = 300000;  // 1.2 MB: five chunks of 256 KiB, one request

uint64_t StreamedSent() { return metrics::Global().GetCounter("shm_streamed_payloads_sent_total").value(); }

class Cluster {
 public:
  explicit Cluster(const std::vector<ParamSpec>& params) {
    ctx_ = *wire::Context::Create();
    CoordinatorOptions co;
    co.job_id = kJob;
    co.num_servers = 1;
    co.num_workers = 1;
    co.shard.chunk_bytes = 256 << 10;
    co.shard.sync.mode = SyncMode::kAsp;
    co.shard.grad_reduce = GradReduce::kSum;
    coord_ = Coordinator::Start(co, ctx_).value();
    paramserver::ServerOptions so;
    so.coordinator = coord_->endpoint();
    so.job_id = kJob;
    so.rank = 1;
    so.num_servers = 1;
    so.num_workers = 1;
    server_ = paramserver::ParamServer::Start(so, ctx_).value();
    worker::ClientOptions wo;
    wo.coordinator = coord_->endpoint();
    wo.job_id = kJob;
    wo.rank = 2;
    wo.num_servers = 1;
    wo.num_workers = 1;
    wo.request_timeout = std::chrono::seconds(20);
    client_ = worker::Client::Connect(wo, ctx_).value();
    EXPECT_OK(client_->DeclareParams(params));
  }
  ~Cluster() {
    client_->Finish(0, "test done").IgnoreError();
    coord_->Wait(std::chrono::seconds(10));
    server_->Wait(std::chrono::seconds(10));
  }
  Status Push(uint32_t id, std::vector<float>& grad, int64_t step) {
    TensorView g{grad.data(), DType::kF32, {static_cast<int64_t>(grad.size())}, Device::kCPU};
    return client_->Push(id, g, step).Wait(std::chrono::seconds(30));
  }
  Status Pull(uint32_t id, std::vector<float>& out, int64_t step) {
    TensorView o{out.data(), DType::kF32, {static_cast<int64_t>(out.size())}, Device::kCPU};
    return client_->Pull(id, o, step).Wait(std::chrono::seconds(30));
  }
  Status PushPull(uint32_t id, std::vector<float>& grad, std::vector<float>& out, int64_t step) {
    TensorView g{grad.data(), DType::kF32, {static_cast<int64_t>(grad.size())}, Device::kCPU};
    TensorView o{out.data(), DType::kF32, {static_cast<int64_t>(out.size())}, Device::kCPU};
    return client_->PushPull(id, g, o, step).Wait(std::chrono::seconds(30));
  }
  // Push+pulls of param `id` until one goes streamed both ways, request and reply (the
  // channel's STREAM_OK arrives after the first requests); false when none did.
  bool WarmUp(uint32_t id) {
    std::vector<float> g(kElements, 0.0f), o(kElements);
    for (int i = 0; i < 200; ++i) {
      const uint64_t before = StreamedSent();
      if (!PushPull(id, g, o, i).ok()) return false;
      if (StreamedSent() == before + 2) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<wire::Context> ctx_;
  std::unique_ptr<Coordinator> coord_;
  std::unique_ptr<paramserver::ParamServer> server_;
  std::unique_ptr<worker::Client> client_;
};

std::vector<ParamSpec> Params() {
  std::vector<ParamSpec> ps;
  const OptimizerKind kinds[] = {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kAdaGrad,
                                 OptimizerKind::kAdam, OptimizerKind::kAdamW};
  for (OptimizerKind k : kinds) {
    ParamSpec p;
    p.name = "p" + std::to_string(ps.size());
    p.shape = {kElements};
    p.init = InitKind::kConstant;
    p.init_scale = 0.5f;
    p.optimizer.kind = k;
    p.optimizer.lr = 0.05f;
    p.optimizer.weight_decay = k == OptimizerKind::kAdamW ? 0.01f : 0.0f;
    ps.push_back(p);
  }
  ParamSpec clipped = ps[0];  // clipping writes the gradient: waits for all of it
  clipped.name = "clipped";
  clipped.optimizer.clip_norm = 1.0f;
  ps.push_back(clipped);
  ParamSpec warm = ps[0];
  warm.name = "warm";
  ps.push_back(warm);
  return ps;
}

// Every param's values after `steps` push+pulls with the same gradients.
// Every param's values after `steps` push+pulls with the same gradients. The flag is
// set before the cluster starts and restored after it stopped (its threads read it).
std::vector<std::vector<float>> RunSteps(bool stream, int steps, uint64_t* streamed) {
  FLAGS_shm_stream = stream;
  const std::vector<ParamSpec> ps = Params();
  const uint32_t warm = static_cast<uint32_t>(ps.size() - 1);
  std::vector<std::vector<float>> out(warm, std::vector<float>(kElements));
  {
    Cluster c(ps);
    if (stream) {
      EXPECT_TRUE(c.WarmUp(warm)) << "no push+pull went streamed";
    }
    const uint64_t before = StreamedSent();
    for (int s = 0; s < steps; ++s) {
      for (uint32_t id = 0; id < warm; ++id) {
        std::vector<float> g(kElements);
        for (int64_t i = 0; i < kElements; ++i) g[i] = static_cast<float>((i * 37 + s * 11 + id) % 101) / 97.0f - 0.5f;
        // Even steps a push+pull, odd ones a push then a pull (the push streams too).
        if (s % 2 == 0) {
          EXPECT_OK(c.PushPull(id, g, out[id], 1000 + s));
        } else {
          EXPECT_OK(c.Push(id, g, 1000 + s));
          EXPECT_OK(c.Pull(id, out[id], 1000 + s));
        }
      }
    }
    *streamed = StreamedSent() - before;
  }
  FLAGS_shm_stream = true;
  return out;
}

TEST(ShmStreamJob, StreamedPushPullIsBitwiseTheUnstreamedOne) {
  uint64_t streamed_on = 0, streamed_off = 0;
  const auto on = RunSteps(true, 4, &streamed_on);
  const auto off = RunSteps(false, 4, &streamed_off);
  // Every push's and push+pull's request streamed; every push+pull's reply but the
  // clipped param's (its update needs the whole gradient first, so its reply goes after
  // it, complete); no pull's or push's reply.
  EXPECT_EQ(streamed_on, 2u * (on.size() + on.size() - 1) + 2u * on.size()) << "every measured request went streamed";
  EXPECT_EQ(streamed_off, 0u);
  ASSERT_EQ(on.size(), off.size());
  for (size_t id = 0; id < on.size(); ++id) {
    EXPECT_EQ(std::memcmp(on[id].data(), off[id].data(), kElements * sizeof(float)), 0) << "param " << id;
    EXPECT_NE(on[id][1], 0.5f) << "param " << id << " was updated";
  }
}

TEST(ShmStreamJob, StalledOrScribblingSenderFailsOneRequestAndTheServerGoesOn) {
  FLAGS_shm_stream_timeout_ms = 300;
  {
    const std::vector<ParamSpec> ps = Params();
    Cluster c(ps);
    ASSERT_TRUE(c.WarmUp(0));
    std::vector<float> g(kElements, 0.25f), o(kElements);
    // Stalled: the progress word says 64 KiB forever.
    wire::TEST_ForgeNextStreamProgress(64 << 10);
    const auto t0 = Clock::now();
    // The server's update waits out its deadline; its reply went first, so the worker
    // learns of the failure from the reply's progress word.
    Status st = c.PushPull(0, g, o, 500);
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_NE(st.message().find("abandoned"), std::string::npos) << st.ToString();
    EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(300));
    EXPECT_OK(c.PushPull(0, g, o, 501));  // the server serves the next request
    // Scribbled: a count beyond the slot.
    wire::TEST_ForgeNextStreamProgress(kElements * sizeof(float) + 4096);
    const auto t1 = Clock::now();
    st = c.PushPull(0, g, o, 502);
    EXPECT_EQ(st.code(), StatusCode::kAborted) << st.ToString();
    EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(300)) << "refused at once, not at the deadline";
    EXPECT_OK(c.PushPull(0, g, o, 503));
  }
  FLAGS_shm_stream_timeout_ms = 2000;
}

}  // namespace
}  // namespace tessera
