// Push/pull throughput through real servers, and the baselines it is judged against.
//
//   ps_bench --bench_mode=baseline --bytes=N          raw ZeroMQ round trip + memcpy, one process
//   ps_bench --bench_mode=auth                         push+pull at 4 KiB / 1 MiB / 64 MiB under
//                                                      --auth=none, mac and curve, against raw ZeroMQ
//                                                      moving the same bytes: one table (one process)
//   tessera launch --servers S --workers W --program ps_bench -- --bench_mode=dense --bytes=N
//   tessera launch ... --program ps_bench -- --bench_mode=sparse --keys_per_batch=4096
//                                                      [--prefill] (steady state: every key resident
//                                                      first) [--overlap] (pull i+1 in flight with push i)
//
// Each worker prints one "RESULT ..." line; bench/ps/run.sh runs every configuration and
// prints the table (docs/benchmarks.md).
#include <gflags/gflags.h>
#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <functional>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "coordinator/coordinator.h"
#include "launch/job.h"
#include "paramserver/server.h"
#include "wire/alloc.h"
#include "wire/socket.h"
#include "worker/client.h"

DEFINE_string(bench_mode, "dense", "dense | sparse | baseline | auth");
DEFINE_string(auth_modes, "none,mac,curve", "auth: the --auth modes to compare");
DEFINE_string(auth_sizes, "4096,1048576,67108864", "auth: payload bytes to measure (profiling one size: --auth_sizes=1048576)");
DEFINE_int32(auth_rounds, 15, "auth: rounds over the modes (a third of them at 64 MiB); each cell is the median round");
DEFINE_int64(bytes, 1 << 20, "dense: tensor bytes (f32)");
DEFINE_int32(iters, 20, "measured iterations");
DEFINE_int32(warmup, 3, "unmeasured iterations first");
DEFINE_int32(threads, 1, "dense: worker threads, each pushing and pulling its own tensor at once");
DEFINE_int64(keys_per_batch, 4096, "sparse: keys per push and pull");
DEFINE_int64(table_keys, 10000000, "sparse: keys are drawn from [0, table_keys)");
DEFINE_int32(dim, 16, "sparse: row width");
DEFINE_bool(prefill, false,
            "sparse: steady state. Before the warm-up every key of [0, table_keys) is pushed once (the "
            "workers split them), then a barrier: the measured pulls and pushes find resident rows, as in "
            "a trained model's table. false: cold (an empty table; nearly every key is new)");
DEFINE_bool(overlap, false,
            "sparse: issue iteration i+1's pull while iteration i's push is in flight (what an asp trainer "
            "can do: both are asynchronous Handles), instead of pull, wait, push, wait");
DEFINE_string(echo_bind, "", "baseline: only run the raw-ZeroMQ echo side, bound here (tcp://ADDR:PORT), for a client on another host");
DEFINE_string(echo_connect, "", "baseline: only run the raw-ZeroMQ client side, against an echo side at this endpoint on another host");

DECLARE_uint64(chunk_bytes);  // launch/job.cc
DECLARE_uint64(tcp_request_bytes);  // launch/job.cc

namespace {

using tessera::DType;
using tessera::Device;
using tessera::Status;
using tessera::TensorView;
using Clock = std::chrono::steady_clock;

double Secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

Status Dense(tessera::launch::WorkerContext& wc) {
  const int64_t n = FLAGS_bytes / 4;
  const int threads = std::max(1, FLAGS_threads);
  std::vector<tessera::ParamSpec> specs(static_cast<size_t>(threads));
  for (int k = 0; k < threads; ++k) {
    tessera::ParamSpec& p = specs[static_cast<size_t>(k)];
    p.name = "t" + std::to_string(k);
    p.shape = {n};
    p.optimizer.kind = tessera::OptimizerKind::kSgd;
    p.optimizer.lr = 0.0f;  // values stay put: we measure transport and aggregation, not drift
  }
  TESSERA_RETURN_IF_ERROR(wc.client->DeclareParams(specs));
  // Each thread its own tensor and buffers: several callers waiting on one server at once.
  std::vector<Status> failed(static_cast<size_t>(threads));
  Clock::time_point t0;  // thread 0's end of warm-up (the others' overlap it)
  auto run = [&](int k) {
    std::vector<float> g(static_cast<size_t>(n), 1.0f), v(static_cast<size_t>(n));
    TensorView gv{g.data(), DType::kF32, {n}, Device::kCPU},
        vv{v.data(), DType::kF32, {n}, Device::kCPU};
    for (int i = 0; i < FLAGS_warmup + FLAGS_iters; ++i) {
      if (k == 0 && i == FLAGS_warmup) t0 = Clock::now();
      Status st =
          wc.client->PushPull(static_cast<uint32_t>(k), gv, vv, i).Wait(std::chrono::seconds(120));
      if (!st.ok()) return void(failed[static_cast<size_t>(k)] = st);
    }
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(run, k);
  run(0);
  for (std::thread& t : pool) t.join();
  for (const Status& st : failed) TESSERA_RETURN_IF_ERROR(st);
  const int timed = FLAGS_iters * threads;
  const double s = Secs(t0, Clock::now());
  // us_per_iter: the worker's time per round trip, all threads together (1 / throughput).
  std::printf(
      "RESULT mode=dense worker=%d bytes=%lld iters=%d threads=%d secs=%.6f gbps=%.4f "
      "us_per_iter=%.1f\n",
      wc.worker_index, static_cast<long long>(FLAGS_bytes), FLAGS_iters, threads, s,
      static_cast<double>(FLAGS_bytes) * timed / s / 1e9, s / timed * 1e6);
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
  std::vector<float> g(static_cast<size_t>(k * d), 0.01f), v(g.size());
  TensorView gv{g.data(), DType::kF32, {k, d}, Device::kCPU}, vv{v.data(), DType::kF32, {k, d}, Device::kCPU};
  int64_t base = 0;  // the first measured step (a worker's pushed steps must increase)
  if (FLAGS_prefill) {
    // Every key once, in ascending batches of 65536 (a worker takes every W-th batch).
    const int64_t batch = 65536, nw = wc.client->shard_map().num_workers();
    std::vector<tessera::Key> pk;
    std::vector<float> pg(static_cast<size_t>(batch * d), 0.01f);
    const auto f0 = Clock::now();
    int64_t step = 0;
    for (int64_t b = wc.worker_index * batch; b < FLAGS_table_keys; b += nw * batch) {
      pk.clear();
      for (int64_t x = b; x < std::min(b + batch, FLAGS_table_keys); ++x) pk.push_back(static_cast<tessera::Key>(x));
      const auto n = static_cast<int64_t>(pk.size());
      TensorView pv{pg.data(), DType::kF32, {n, d}, Device::kCPU};
      TESSERA_RETURN_IF_ERROR(wc.client->PushSparse(0, pk, pv, step++).Wait(std::chrono::seconds(120)));
    }
    TESSERA_RETURN_IF_ERROR(wc.client->Barrier(std::chrono::seconds(600)));
    base = step;
    std::printf("PREFILL worker=%d secs=%.3f\n", wc.worker_index, Secs(f0, Clock::now()));
  }
  // Every step's keys drawn before the clock starts, in the order the loop used to draw
  // them (batch b is the rng's b-th run of k draws): raw ZeroMQ's baseline draws nothing,
  // and mt19937_64 in the timed loop was ~28 us of a ~730 us step. Past kRing batches
  // (32 MB of keys per worker at k = 4096) the ring repeats; runs of up to kRing - 1
  // steps see exactly the keys they saw when the loop drew them.
  constexpr int64_t kRing = 1024;
  const int64_t total = FLAGS_warmup + FLAGS_iters;
  const int64_t ring = std::min<int64_t>(total + 1, kRing);
  std::vector<tessera::Key> ring_keys(static_cast<size_t>(ring * k));
  for (auto& x : ring_keys) x = key(rng);
  auto batch = [&](int64_t i) {
    return std::span<const tessera::Key>(ring_keys.data() + (i % ring) * k, static_cast<size_t>(k));
  };
  Clock::time_point t0;
  if (!FLAGS_overlap) {
    for (int i = 0; i < total; ++i) {
      if (i == FLAGS_warmup) t0 = Clock::now();
      TESSERA_RETURN_IF_ERROR(wc.client->PullSparse(0, batch(i), vv, base + i).Wait(std::chrono::seconds(120)));
      TESSERA_RETURN_IF_ERROR(wc.client->PushSparse(0, batch(i), gv, base + i).Wait(std::chrono::seconds(120)));
    }
  } else {
    // Pull i+1 goes out right after push i, before push i's reply: two requests in flight.
    std::vector<float> v2(v.size());
    TensorView vv2{v2.data(), DType::kF32, {k, d}, Device::kCPU};
    TESSERA_RETURN_IF_ERROR(wc.client->PullSparse(0, batch(0), vv, base).Wait(std::chrono::seconds(120)));
    for (int i = 0; i < total; ++i) {
      if (i == FLAGS_warmup) t0 = Clock::now();
      auto push = wc.client->PushSparse(0, batch(i), gv, base + i);
      auto pull = wc.client->PullSparse(0, batch(i + 1), (i % 2 == 0) ? vv2 : vv, base + i + 1);
      TESSERA_RETURN_IF_ERROR(push.Wait(std::chrono::seconds(120)));
      TESSERA_RETURN_IF_ERROR(pull.Wait(std::chrono::seconds(120)));
    }
  }
  double s = Secs(t0, Clock::now());
  std::printf("RESULT mode=sparse worker=%d keys=%lld iters=%d prefill=%d overlap=%d secs=%.6f keys_per_s=%.0f\n",
              wc.worker_index, static_cast<long long>(k), FLAGS_iters, FLAGS_prefill ? 1 : 0, FLAGS_overlap ? 1 : 0, s,
              static_cast<double>(k) * FLAGS_iters / s);
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

// ---- --bench_mode=auth: one in-process job (coordinator, server, worker; threads) per
// auth mode, all alive at once; the modes take turns so that load on the machine hits all
// alike (each round: raw ZeroMQ, then a short batch per mode), and each cell is the median
// of --auth_rounds rounds.

// Raw ZeroMQ: n bytes out, n bytes back (a fresh reply, copied out), between two threads.
double RawRoundTripUs(size_t n, int iters) {
  void* ctx = zmq_ctx_new();
  void* router = zmq_socket(ctx, ZMQ_ROUTER);
  void* dealer = zmq_socket(ctx, ZMQ_DEALER);
  zmq_bind(router, "tcp://127.0.0.1:*");
  char ep[256];
  size_t len = sizeof(ep);
  zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &len);
  zmq_connect(dealer, ep);
  const int total = iters + 2;
  std::thread echo([&] {
    for (int i = 0; i < total; ++i) {
      zmq_msg_t id, body, reply;
      zmq_msg_init(&id);
      zmq_msg_init(&body);
      zmq_msg_recv(&id, router, 0);
      zmq_msg_recv(&body, router, 0);
      zmq_msg_send(&id, router, ZMQ_SNDMORE);
      zmq_msg_init_size(&reply, n);
      std::memcpy(zmq_msg_data(&reply), zmq_msg_data(&body), n);
      zmq_msg_close(&body);
      zmq_msg_send(&reply, router, 0);
    }
  });
  std::vector<char> buf(n, 1), back(n);
  Clock::time_point t0;
  for (int i = 0; i < total; ++i) {
    if (i == 2) t0 = Clock::now();
    zmq_send(dealer, buf.data(), n, 0);
    zmq_msg_t r;
    zmq_msg_init(&r);
    zmq_msg_recv(&r, dealer, 0);
    std::memcpy(back.data(), zmq_msg_data(&r), n);
    zmq_msg_close(&r);
  }
  const double us = Secs(t0, Clock::now()) / iters * 1e6;
  echo.join();
  zmq_close(dealer);
  zmq_close(router);
  zmq_ctx_term(ctx);
  return us;
}

struct AuthJob {
  std::string mode;
  std::shared_ptr<tessera::wire::Context> ctx;
  std::unique_ptr<tessera::Coordinator> coord;
  std::unique_ptr<tessera::paramserver::ParamServer> server;
  std::unique_ptr<tessera::worker::Client> client;
  int64_t steps[3] = {0, 0, 0};  // per parameter: a worker's pushed steps must increase
};

tessera::Result<std::unique_ptr<AuthJob>> StartAuthJob(const std::string& mode, const tessera::wire::CurveKeys& keys,
                                                        uint64_t chunk_bytes) {
  using namespace tessera;
  constexpr uint64_t kJob = 777;
  auto job = std::make_unique<AuthJob>();
  job->mode = mode;
  TESSERA_ASSIGN_OR_RETURN(job->ctx, wire::Context::Create());
  if (mode == "mac") TESSERA_RETURN_IF_ERROR(job->ctx->EnableMac(keys));
  if (mode == "curve") TESSERA_RETURN_IF_ERROR(job->ctx->EnableCurve(keys));
  CoordinatorOptions co;
  co.job_id = kJob;
  co.num_servers = 1;
  co.num_workers = 1;
  co.shard.chunk_bytes = chunk_bytes;
  TESSERA_ASSIGN_OR_RETURN(co.shard.sync, ParseSyncPolicy("asp"));
  TESSERA_ASSIGN_OR_RETURN(job->coord, Coordinator::Start(co, job->ctx));
  paramserver::ServerOptions so;
  so.coordinator = job->coord->endpoint();
  so.job_id = kJob;
  so.rank = 1;
  so.num_servers = 1;
  so.num_workers = 1;
  TESSERA_ASSIGN_OR_RETURN(job->server, paramserver::ParamServer::Start(so, job->ctx));
  worker::ClientOptions wo;
  wo.coordinator = job->coord->endpoint();
  wo.job_id = kJob;
  wo.rank = 2;
  wo.num_servers = 1;
  wo.num_workers = 1;
  wo.tcp_request_bytes = FLAGS_tcp_request_bytes;
  TESSERA_ASSIGN_OR_RETURN(job->client, worker::Client::Connect(wo, job->ctx));
  return job;
}

int AuthTable() {
  using namespace tessera;
  wire::TuneAllocatorForLargeMessages();
  auto keys = wire::GenerateCurveKeys();
  if (!keys.ok()) {
    std::fprintf(stderr, "ps_bench: %s\n", keys.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> modes;
  for (size_t a = 0; a <= FLAGS_auth_modes.size();) {
    size_t b = FLAGS_auth_modes.find(',', a);
    if (b == std::string::npos) b = FLAGS_auth_modes.size();
    if (b > a) modes.push_back(FLAGS_auth_modes.substr(a, b - a));
    a = b + 1;
  }
  const std::vector<int64_t> sizes = {4096, 1 << 20, 64 << 20};  // the parameters every job declares
  std::vector<int64_t> measured;
  for (size_t a = 0; a <= FLAGS_auth_sizes.size();) {
    size_t b = FLAGS_auth_sizes.find(',', a);
    if (b == std::string::npos) b = FLAGS_auth_sizes.size();
    if (b > a) measured.push_back(std::atoll(FLAGS_auth_sizes.substr(a, b - a).c_str()));
    a = b + 1;
  }
  for (int64_t m : measured) {
    if (std::find(sizes.begin(), sizes.end(), m) == sizes.end()) {
      std::fprintf(stderr, "ps_bench: --auth_sizes: %lld is not one of 4096, 1048576, 67108864\n", static_cast<long long>(m));
      return 1;
    }
  }
  // One job per mode; params of every size declared up front.
  std::vector<std::unique_ptr<AuthJob>> jobs;
  for (const auto& m : modes) {
    // 16 MiB chunks unless --chunk_bytes is given: one request per push+pull up to 16 MiB.
    const bool chunk_default = gflags::GetCommandLineFlagInfoOrDie("chunk_bytes").is_default;
    auto j = StartAuthJob(m, *keys, chunk_default ? uint64_t{16} << 20 : FLAGS_chunk_bytes);
    if (!j.ok()) {
      std::fprintf(stderr, "ps_bench: --auth=%s: %s\n", m.c_str(), j.status().ToString().c_str());
      return 1;
    }
    std::vector<ParamSpec> specs;
    for (int64_t bytes : sizes) {
      ParamSpec p;
      p.name = "t" + std::to_string(bytes);
      p.shape = {bytes / 4};
      p.optimizer.kind = OptimizerKind::kSgd;
      p.optimizer.lr = 0.0f;
      specs.push_back(p);
    }
    Status st = (*j)->client->DeclareParams(specs);
    if (!st.ok()) {
      std::fprintf(stderr, "ps_bench: --auth=%s: %s\n", m.c_str(), st.ToString().c_str());
      return 1;
    }
    jobs.push_back(std::move(j).value());
  }
  std::printf("| payload | raw ZeroMQ µs | %s |", modes[0].c_str());
  for (size_t i = 1; i < modes.size(); ++i) std::printf(" %s |", modes[i].c_str());
  for (size_t i = 1; i < modes.size(); ++i) std::printf(" %s / %s |", modes[i].c_str(), modes[0].c_str());
  std::printf(" %s / raw |\n|---|---|", modes[0].c_str());
  for (size_t i = 0; i < 2 * modes.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (size_t si = 0; si < sizes.size(); ++si) {
    const int64_t bytes = sizes[si];
    if (std::find(measured.begin(), measured.end(), bytes) == measured.end()) continue;
    const int64_t n = bytes / 4;
    const int iters = bytes <= 4096 ? 40 : bytes <= (1 << 20) ? 8 : 1;
    const int rounds = bytes <= (1 << 20) ? FLAGS_auth_rounds : std::max(3, FLAGS_auth_rounds / 3);
    std::vector<float> g(static_cast<size_t>(n), 1.0f), v(static_cast<size_t>(n));
    TensorView gv{g.data(), DType::kF32, {n}, Device::kCPU}, vv{v.data(), DType::kF32, {n}, Device::kCPU};
    std::vector<std::vector<double>> us(modes.size());
    std::vector<double> raw;
    for (int round = 0; round < rounds; ++round) {
      raw.push_back(RawRoundTripUs(static_cast<size_t>(bytes), iters));
      for (size_t mi = 0; mi < modes.size(); ++mi) {
        auto& c = *jobs[mi]->client;
        Clock::time_point t0;
        for (int i = 0; i < iters + 1; ++i) {
          if (i == 1) t0 = Clock::now();
          const int64_t step = jobs[mi]->steps[si]++;
          Status st = c.PushPull(static_cast<uint32_t>(si), gv, vv, step).Wait(std::chrono::seconds(120));
          if (!st.ok()) {
            std::fprintf(stderr, "ps_bench: --auth=%s: %s\n", modes[mi].c_str(), st.ToString().c_str());
            return 1;
          }
        }
        us[mi].push_back(Secs(t0, Clock::now()) / iters * 1e6);
      }
    }
    auto median = [](std::vector<double> x) {
      std::sort(x.begin(), x.end());
      return x[x.size() / 2];
    };
    const double r = median(raw);
    std::printf("| %s | %.1f |", bytes == 4096 ? "4 KiB" : bytes == (1 << 20) ? "1 MiB" : "64 MiB", r);
    for (auto& u : us) std::printf(" %.1f |", median(u));
    for (size_t i = 1; i < modes.size(); ++i) std::printf(" %.2f |", median(us[i]) / median(us[0]));
    std::printf(" %.2f |\n", median(us[0]) / r);
    std::fflush(stdout);
  }
  for (auto& j : jobs) {
    j->client->Finish(0, "bench done").IgnoreError();
    j->coord->Wait(std::chrono::seconds(10));
    j->server->Wait(std::chrono::seconds(10));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  tessera::InitProcess(&argc, &argv, "ps_bench: push/pull throughput through Tessera's servers");
  if (FLAGS_bench_mode == "baseline") return Baseline();
  if (FLAGS_bench_mode == "auth") return AuthTable();
  return tessera::launch::RunJobProcess([](tessera::launch::WorkerContext& wc) {
    if (FLAGS_bench_mode == "dense") return Dense(wc);
    if (FLAGS_bench_mode == "sparse") return Sparse(wc);
    return Status::InvalidArgument("unknown --bench_mode " + FLAGS_bench_mode);
  });
}
