// Test helper: a whole job in this process — a real coordinator, one server and one or
// more workers on one wire::Context, talking over real ZeroMQ sockets on 127.0.0.1 (and shared
// memory, unless --shm=off) — driven through the worker's Client, plus the dense params
// of every optimizer that the bitwise tests compare (shm_stream_job_test,
// tcp_pipeline_test, sparse_groups_reuse_test, mean_fold_job_test).
//
// Threading: the job's threads are the coordinator's, server's and client's reactors;
// the test thread only calls the methods below.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "wire/curve.h"
#include "wire/socket.h"
#include "worker/client.h"

namespace tessera::testing {

struct InProcJobOptions {
  uint64_t job_id = 4343;
  uint64_t chunk_bytes = 256 << 10;
  SyncMode sync = SyncMode::kAsp;
  int64_t staleness = 0;  // ssp's bound
  int workers = 1;
  GradReduce grad_reduce = GradReduce::kSum;
  bool mac = false;  // --auth=mac with a fresh job key
  uint64_t tcp_request_bytes = worker::ClientOptions{}.tcp_request_bytes;
  Duration request_timeout = std::chrono::seconds(20);
  bool caller_leads = worker::ClientOptions{}.caller_leads;
};

class InProcJob {
 public:
  InProcJob(const InProcJobOptions& o, const std::vector<ParamSpec>& params) {
    ctx_ = *wire::Context::Create();
    if (o.mac) EXPECT_OK(ctx_->EnableMac(*wire::GenerateCurveKeys()));
    CoordinatorOptions co;
    co.job_id = o.job_id;
    co.num_servers = 1;
    co.num_workers = o.workers;
    co.shard.chunk_bytes = o.chunk_bytes;
    co.shard.sync = SyncPolicy{o.sync, o.staleness};
    co.shard.grad_reduce = o.grad_reduce;
    coord_ = Coordinator::Start(co, ctx_).value();
    paramserver::ServerOptions so;
    so.coordinator = coord_->endpoint();
    so.job_id = o.job_id;
    so.rank = 1;
    so.num_servers = 1;
    so.num_workers = o.workers;
    server_ = paramserver::ParamServer::Start(so, ctx_).value();
    for (int w = 0; w < o.workers; ++w) {
      worker::ClientOptions wo;
      wo.coordinator = coord_->endpoint();
      wo.job_id = o.job_id;
      wo.rank = 2 + w;
      wo.num_servers = 1;
      wo.num_workers = o.workers;
      wo.request_timeout = o.request_timeout;
      wo.tcp_request_bytes = o.tcp_request_bytes;
      wo.caller_leads = o.caller_leads;
      clients_.push_back(worker::Client::Connect(wo, ctx_).value());
    }
    // Each declaration waits for the shard map, which waits for every worker's.
    std::vector<std::thread> declare;
    for (auto& c : clients_) declare.emplace_back([&c, &params] { EXPECT_OK(c->DeclareParams(params)); });
    for (auto& t : declare) t.join();
  }
  ~InProcJob() {
    for (auto& c : clients_) c->Finish(0, "test done").IgnoreError();
    coord_->Wait(std::chrono::seconds(10));
    server_->Wait(std::chrono::seconds(10));
  }
  static TensorView View(std::vector<float>& v) {
    return {v.data(), DType::kF32, {static_cast<int64_t>(v.size())}, Device::kCPU};
  }
  // Push, Pull and PushPull go through worker 0.
  Status Push(uint32_t id, std::vector<float>& grad, int64_t step) {
    return clients_[0]->Push(id, View(grad), step).Wait(std::chrono::seconds(30));
  }
  Status Pull(uint32_t id, std::vector<float>& out, int64_t step) {
    return clients_[0]->Pull(id, View(out), step).Wait(std::chrono::seconds(30));
  }
  Status PushPull(uint32_t id, std::vector<float>& grad, std::vector<float>& out, int64_t step) {
    return clients_[0]->PushPull(id, View(grad), View(out), step).Wait(std::chrono::seconds(30));
  }
  worker::Client& client(int w = 0) { return *clients_[static_cast<size_t>(w)]; }
  // Requests worker 0 has sent to servers so far.
  uint64_t requests() const { return clients_[0]->stats().requests.load(); }

 private:
  std::shared_ptr<wire::Context> ctx_;
  std::unique_ptr<Coordinator> coord_;
  std::unique_ptr<paramserver::ParamServer> server_;
  std::vector<std::unique_ptr<worker::Client>> clients_;
};

// A dense param of `elements` per optimizer (SGD, momentum, AdaGrad, Adam, AdamW), then
// "clipped" (SGD with clip_norm 1, which the server applies per chunk).
inline std::vector<ParamSpec> EveryOptimizer(int64_t elements) {
  std::vector<ParamSpec> ps;
  const OptimizerKind kinds[] = {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kAdaGrad,
                                 OptimizerKind::kAdam, OptimizerKind::kAdamW};
  for (OptimizerKind k : kinds) {
    ParamSpec p;
    p.name = "p" + std::to_string(ps.size());
    p.shape = {elements};
    p.init = InitKind::kConstant;
    p.init_scale = 0.5f;
    p.optimizer.kind = k;
    p.optimizer.lr = 0.05f;
    p.optimizer.weight_decay = k == OptimizerKind::kAdamW ? 0.01f : 0.0f;
    ps.push_back(p);
  }
  ParamSpec clipped = ps[0];
  clipped.name = "clipped";
  clipped.optimizer.clip_norm = 1.0f;
  ps.push_back(clipped);
  return ps;
}

// Step `step`'s gradient of param `id`: differs per element, step and param, both signs.
inline std::vector<float> StepGradient(int64_t elements, int64_t step, uint32_t id) {
  std::vector<float> g(static_cast<size_t>(elements));
  for (int64_t i = 0; i < elements; ++i) g[i] = static_cast<float>((i * 37 + step * 11 + id) % 101) / 97.0f - 0.5f;
  return g;
}

}  // namespace tessera::testing
