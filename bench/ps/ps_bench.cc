// Push/pull throughput through real servers, and the baselines it is judged against.
//
//   ps_bench --bench_mode=baseline --bytes=N          raw ZeroMQ round trip + memcpy, one process
//   tessera launch --servers S --workers W --program ps_bench -- --bench_mode=dense --bytes=N
//   tessera launch ... --program ps_bench -- --bench_mode=sparse --keys_per_batch=4096
//
// Each worker prints one "RESULT ..." line; bench/ps/run.sh runs every configuration and
// prints the table (docs/benchmarks.md).
#include <gflags/gflags.h>
#include <zmq.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <functional>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "launch/job.h"
#include "wire/alloc.h"

DEFINE_string(bench_mode, "dense", "dense | sparse | baseline");
DEFINE_int64(bytes, 1 << 20, "dense: tensor bytes (f32)");
DEFINE_int32(iters, 20, "measured iterations");
DEFINE_int32(warmup, 3, "unmeasured iterations first");
DEFINE_int64(keys_per_batch, 4096, "sparse: keys per push and pull");
DEFINE_int64(table_keys, 10000000, "sparse: keys are drawn from [0, table_keys)");
DEFINE_int32(dim, 16, "sparse: row width");
DEFINE_string(echo_bind, "", "baseline: only run the raw-ZeroMQ echo side, bound here (tcp://ADDR:PORT), for a client on another host");
DEFINE_string(echo_connect, "", "baseline: only run the raw-ZeroMQ client side, against an echo side at this endpoint on another host");

namespace {

using tessera::DType;
using tessera::Device;
using tessera::Status;
using tessera::TensorView;
using Clock = std::chrono::steady_clock;

double Secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

Status Dense(tessera::launch::WorkerContext& wc) {
  const int64_t n = FLAGS_bytes / 4;
  tessera::ParamSpec p;
  p.name = "t";
  p.shape = {n};
  p.optimizer.kind = tessera::OptimizerKind::kSgd;
  p.optimizer.lr = 0.0f;  // values stay put: we measure transport and aggregation, not drift
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams({p}));
  std::vector<float> g(static_cast<size_t>(n), 1.0f), v(static_cast<size_t>(n));
  TensorView gv{g.data(), DType::kF32, {n}, Device::kCPU}, vv{v.data(), DType::kF32, {n}, Device::kCPU};
  Clock::time_point t0;
  for (int i = 0; i < FLAGS_warmup + FLAGS_iters; ++i) {
    if (i == FLAGS_warmup) t0 = Clock::now();
    TESSERA_RETURN_IF_ERROR(wc.client->PushPull(0, gv, vv, i).Wait(std::chrono::seconds(120)));
  }
  double s = Secs(t0, Clock::now());
  std::printf("RESULT mode=dense worker=%d bytes=%lld iters=%d secs=%.6f gbps=%.4f us_per_iter=%.1f\n",
              wc.worker_index, static_cast<long long>(FLAGS_bytes), FLAGS_iters, s,
              static_cast<double>(FLAGS_bytes) * FLAGS_iters / s / 1e9, s / FLAGS_iters * 1e6);
  return Status::OK();
}

Status Sparse(tessera::launch::WorkerContext& wc) {
  tessera::ParamSpec p;
  p.name = "table";
  p.kind = tessera::ParamKind::kSparse;
  p.shape = {FLAGS_dim};
  p.init = tessera::InitKind::kUniform;
  p.init_scale = 0.01f;
  p.optimizer.kind = tessera::OptimizerKind::kSgd;
  p.optimizer.lr = 0.1f;
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams({p}));
  const int64_t k = FLAGS_keys_per_batch, d = FLAGS_dim;
  std::mt19937_64 rng(1234 + static_cast<uint64_t>(wc.worker_index));
  std::uniform_int_distribution<uint64_t> key(0, static_cast<uint64_t>(FLAGS_table_keys) - 1);
  std::vector<tessera::Key> keys(static_cast<size_t>(k));
  std::vector<float> g(static_cast<size_t>(k * d), 0.01f), v(g.size());
  TensorView gv{g.data(), DType::kF32, {k, d}, Device::kCPU}, vv{v.data(), DType::kF32, {k, d}, Device::kCPU};
  Clock::time_point t0;
  for (int i = 0; i < FLAGS_warmup + FLAGS_iters; ++i) {
    for (auto& x : keys) x = key(rng);
    if (i == FLAGS_warmup) t0 = Clock::now();
    TESSERA_RETURN_IF_ERROR(wc.client->PullSparse(0, keys, vv, i).Wait(std::chrono::seconds(120)));
    TESSERA_RETURN_IF_ERROR(wc.client->PushSparse(0, keys, gv, i).Wait(std::chrono::seconds(120)));
  }
  double s = Secs(t0, Clock::now());
  std::printf("RESULT mode=sparse worker=%d keys=%lld iters=%d secs=%.6f keys_per_s=%.0f\n", wc.worker_index,
              static_cast<long long>(k), FLAGS_iters, s, static_cast<double>(k) * FLAGS_iters / s);
  return Status::OK();
}

// Raw ZeroMQ: DEALER sends N bytes, ROUTER echoes N bytes back (the same bytes a
// push+pull moves), over tcp://127.0.0.1 between two threads, or between two hosts with
// --echo_bind on one and --echo_connect on the other; and memcpy of N bytes.
int Baseline() {
  tessera::wire::TuneAllocatorForLargeMessages();
  const size_t n = static_cast<size_t>(FLAGS_bytes);
  void* ctx = zmq_ctx_new();
  void* router = zmq_socket(ctx, ZMQ_ROUTER);
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  const bool echo_only = !FLAGS_echo_bind.empty(), client_only = !FLAGS_echo_connect.empty();
  if (!client_only && zmq_bind(router, echo_only ? FLAGS_echo_bind.c_str() : "tcp://127.0.0.1:*") != 0) {
    std::fprintf(stderr, "ps_bench: cannot bind %s: %s\n", FLAGS_echo_bind.c_str(), zmq_strerror(zmq_errno()));
    return 1;
  }
  char ep[256];
  size_t len = sizeof(ep);
  zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
  if (!echo_only) zmq_connect(dealer, client_only ? FLAGS_echo_connect.c_str() : ep);
  const int total = FLAGS_warmup + FLAGS_iters;
  auto echo_loop = [&] {
    for (int i = 0; i < total; ++i) {
      zmq_msg_t id, body;
      zmq_msg_init(&id);
      zmq_msg_init(&body);
      zmq_msg_recv(&id, router, 0);
      zmq_msg_recv(&body, router, 0);
      zmq_msg_send(&id, router, ZMQ_SNDMORE);
      zmq_msg_t reply;  // a fresh N-byte reply, as a server's pull answer is
      zmq_msg_init_size(&reply, n);
      std::memcpy(zmq_msg_data(&reply), zmq_msg_data(&body), n);
      zmq_msg_close(&body);
      zmq_msg_send(&reply, router, 0);
    }
  };
  if (echo_only) {
    echo_loop();
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
    return 0;
  }
  std::thread echo(client_only ? std::function<void()>([] {}) : std::function<void()>(echo_loop));
  std::vector<char> buf(n, 1), back(n);
  Clock::time_point t0;
  for (int i = 0; i < total; ++i) {
    if (i == FLAGS_warmup) t0 = Clock::now();
    zmq_send(dealer, buf.data(), n, 0);
    zmq_msg_t r;
    zmq_msg_init(&r);
    zmq_msg_recv(&r, dealer, 0);
    std::memcpy(back.data(), zmq_msg_data(&r), n);  // the client copies pulled values into the model
    zmq_msg_close(&r);
  }
  double zs = Secs(t0, Clock::now());
  echo.join();
  zmq_close(dealer);
  zmq_close(router);
  zmq_ctx_term(ctx);
  std::vector<char> dst(n);
  auto m0 = Clock::now();
  for (int i = 0; i < FLAGS_iters * 4; ++i) {
    std::memcpy(dst.data(), buf.data(), n);
    buf[static_cast<size_t>(i) % n] ^= 1;  // keep the copies from being folded together
  }
  double ms = Secs(m0, Clock::now()) / 4;
  std::printf("RESULT mode=baseline bytes=%zu iters=%d zmq_gbps=%.4f zmq_us_per_iter=%.1f memcpy_gbps=%.4f\n", n,
              FLAGS_iters, static_cast<double>(n) * FLAGS_iters / zs / 1e9, zs / FLAGS_iters * 1e6,
              static_cast<double>(n) * FLAGS_iters / ms / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tessera::InitProcess(&argc, &argv, "ps_bench: push/pull throughput through Tessera's servers");
  if (FLAGS_bench_mode == "baseline") return Baseline();
  return tessera::launch::RunJobProcess([](tessera::launch::WorkerContext& wc) {
    if (FLAGS_bench_mode == "dense") return Dense(wc);
    if (FLAGS_bench_mode == "sparse") return Sparse(wc);
    return Status::InvalidArgument("unknown --bench_mode " + FLAGS_bench_mode);
  });
}
