// kv_baseline: a plain C++ key-value parameter server over raw ZeroMQ, the yardstick issue
// 18 names beside raw ZeroMQ ("what simple C++ key-value servers reach on this machine with
// the same workload"). It uses no Tessera code. A server process is one thread on a ROUTER
// socket holding std::unordered_map<uint64_t, std::array<float, D>> (--store=map, the
// shape of ps-lite's default KVServer handle: a hash map from key to value) or a flat
// open-addressing table of (key, row) entries (--store=flat, a faster map such a server
// could hold instead), creating a row on its first touch and applying SGD key by key on a
// push. A worker process holds one DEALER per server and runs Tessera's steady sparse
// step (ps_bench --bench_mode=sparse --prefill): every key of the table pushed once first,
// then per step a pull and a push of a batch of uniformly random keys, split by
// key % servers, each waited for. No authentication, no checkpoints, no deduplication, no
// bounds on what a request asks: a yardstick, not a server to run.
//
//   kv_baseline --role=server --bind=tcp://127.0.0.1:5611 --workers=W [--store=flat]
//   kv_baseline --role=worker --connect=tcp://127.0.0.1:5611[,...] --worker=I --workers=W
//
// Threads: each process is single-threaded (plus libzmq's I/O thread).
#include <zmq.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <gflags/gflags.h>

DEFINE_string(role, "", "server | worker");
DEFINE_string(bind, "", "server: the endpoint to bind (tcp://ADDR:PORT)");
DEFINE_string(connect, "", "worker: the servers' endpoints, comma-separated, in server order");
DEFINE_int32(worker, 0, "worker: this worker's index");
DEFINE_int32(workers, 1, "the job's worker count (a server answers the barrier once all have arrived)");
DEFINE_int64(keys_per_batch, 4096, "worker: keys per pull and per push");
DEFINE_int64(table_keys, 10000000, "worker: keys of the table (prefilled, split by key % servers); server: the keys it will hold (its share)");
DEFINE_int32(iters, 300, "worker: timed steps");
DEFINE_int32(warmup, 10, "worker: untimed steps first");
DEFINE_string(store, "map", "server: map (std::unordered_map) | flat (linear probing over (key, row) entries)");

namespace {

constexpr int kDim = 16;  // the sparse benchmark's D; fixed so a row is one inline array
constexpr float kLr = 0.1f;
using Row = std::array<float, kDim>;
using Clock = std::chrono::steady_clock;
enum Op : uint8_t { kPull = 'L', kPush = 'P', kBarrier = 'B', kStop = 'S' };

// A deterministic initial row, so pulls of a new key agree whichever worker asks first.
void InitRow(uint64_t key, Row* r) {
  uint64_t x = key * 0x9e3779b97f4a7c15ULL + 1;
  for (float& v : *r) {
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    v = (static_cast<float>(x >> 40) / static_cast<float>(1 << 24) - 0.5f) * 0.02f;
  }
}

// Linear probing over a power-of-two array of (key, row) entries sized for the whole table
// at a load of at most 1/2, so it never grows; no prefetching, one lookup at a time.
class FlatStore {
 public:
  explicit FlatStore(uint64_t keys) {
    uint64_t cap = 16;
    while (cap < 2 * keys) cap *= 2;
    e_.resize(cap);
    mask_ = cap - 1;
    shift_ = static_cast<int>(64 - std::countr_zero(cap));
  }
  Row& Get(uint64_t key) {
    for (uint64_t i = (key * 0x9e3779b97f4a7c15ULL) >> shift_;; i = (i + 1) & mask_) {
      Entry& e = e_[i];
      if (e.used && e.key == key) return e.row;
      if (!e.used) {
        e.used = true;
        e.key = key;
        InitRow(key, &e.row);
        return e.row;
      }
    }
  }

 private:
  struct Entry {
    uint64_t key = 0;
    bool used = false;
    Row row;
  };
  std::vector<Entry> e_;
  uint64_t mask_ = 0;
  int shift_ = 0;
};

template <bool kFlat>
int Serve() {
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_ROUTER);
  if (zmq_bind(s, FLAGS_bind.c_str()) != 0) {
    std::fprintf(stderr, "kv_baseline: cannot bind %s: %s\n", FLAGS_bind.c_str(), zmq_strerror(zmq_errno()));
    return 1;
  }
  // The flat table is sized for --table_keys (a server is given its share); the map grows
  // by its inserts, as such a server's map would. (The map as a member of a wrapper
  // class measured 2x slower here, for no reason found: it stays a local, the form that
  // measured fastest, so the yardstick is the stronger one.)
  FlatStore flat(kFlat ? static_cast<uint64_t>(FLAGS_table_keys) : 0);
  std::unordered_map<uint64_t, Row> map;
  auto row = [&](uint64_t key) -> Row& {
    if constexpr (kFlat) {
      return flat.Get(key);
    } else {
      auto [it, fresh] = map.try_emplace(key);
      if (fresh) InitRow(key, &it->second);
      return it->second;
    }
  };
  std::vector<std::string> waiting;  // identities of workers at the barrier
  int stopped = 0;
  while (stopped < FLAGS_workers) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    zmq_msg_recv(&id, s, 0);
    zmq_msg_recv(&body, s, 0);
    const auto* b = static_cast<const uint8_t*>(zmq_msg_data(&body));
    const size_t len = zmq_msg_size(&body);
    const uint8_t op = len > 0 ? b[0] : 0;
    const size_t n = len >= 9 ? (len - 1) / 8 : 0;
    zmq_msg_t reply;
    if (op == kPull) {
      zmq_msg_init_size(&reply, n * sizeof(Row));
      auto* out = static_cast<Row*>(zmq_msg_data(&reply));
      for (size_t i = 0; i < n; ++i) {
        uint64_t k;
        std::memcpy(&k, b + 1 + 8 * i, 8);
        out[i] = row(k);
      }
    } else if (op == kPush) {
      const size_t keys = (len - 1) / (8 + sizeof(Row));
      const uint8_t* g = b + 1 + 8 * keys;
      for (size_t i = 0; i < keys; ++i) {
        uint64_t k;
        std::memcpy(&k, b + 1 + 8 * i, 8);
        Row grad;
        std::memcpy(grad.data(), g + i * sizeof(Row), sizeof(Row));
        Row& r = row(k);
        for (int d = 0; d < kDim; ++d) r[d] -= kLr * grad[d];
      }
      zmq_msg_init_size(&reply, 1);
    } else if (op == kBarrier) {
      waiting.emplace_back(static_cast<const char*>(zmq_msg_data(&id)), zmq_msg_size(&id));
      zmq_msg_close(&id);
      zmq_msg_close(&body);
      if (static_cast<int>(waiting.size()) == FLAGS_workers) {
        for (const std::string& w : waiting) {
          zmq_send(s, w.data(), w.size(), ZMQ_SNDMORE);
          zmq_send(s, "", 0, 0);
        }
        waiting.clear();
      }
      continue;
    } else {
      ++stopped;
      zmq_msg_init_size(&reply, 0);
    }
    zmq_msg_close(&body);
    zmq_msg_send(&id, s, ZMQ_SNDMORE);
    zmq_msg_send(&reply, s, 0);
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}

int Server() { return FLAGS_store == "flat" ? Serve<true>() : Serve<false>(); }

struct Worker {
  void* ctx = zmq_ctx_new();
  std::vector<void*> socks;
  // Per server: the request being built and the batch positions it carries.
  std::vector<std::vector<uint8_t>> req;
  std::vector<std::vector<uint32_t>> pos;

  void Send(size_t s) { zmq_send(socks[s], req[s].data(), req[s].size(), 0); }
  // Splits `keys` by server into req (op, keys, and for a push their rows of `grads`).
  void Build(uint8_t op, const std::vector<uint64_t>& keys, const float* grads) {
    const size_t S = socks.size();
    for (size_t s = 0; s < S; ++s) {
      pos[s].clear();
      req[s].assign(1, op);
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      const size_t s = keys[i] % S;
      pos[s].push_back(static_cast<uint32_t>(i));
      const auto* k = reinterpret_cast<const uint8_t*>(&keys[i]);
      req[s].insert(req[s].end(), k, k + 8);
    }
    if (grads == nullptr) return;
    for (size_t s = 0; s < S; ++s) {
      for (uint32_t i : pos[s]) {
        const auto* g = reinterpret_cast<const uint8_t*>(grads + size_t{i} * kDim);
        req[s].insert(req[s].end(), g, g + sizeof(Row));
      }
    }
  }
  void Pull(const std::vector<uint64_t>& keys, float* out) {
    Build(kPull, keys, nullptr);
    for (size_t s = 0; s < socks.size(); ++s) Send(s);
    for (size_t s = 0; s < socks.size(); ++s) {
      zmq_msg_t r;
      zmq_msg_init(&r);
      zmq_msg_recv(&r, socks[s], 0);
      const auto* rows = static_cast<const float*>(zmq_msg_data(&r));
      for (size_t j = 0; j < pos[s].size(); ++j) std::memcpy(out + size_t{pos[s][j]} * kDim, rows + j * kDim, sizeof(Row));
      zmq_msg_close(&r);
    }
  }
  void Push(const std::vector<uint64_t>& keys, const float* grads) {
    Build(kPush, keys, grads);
    for (size_t s = 0; s < socks.size(); ++s) Send(s);
    for (void* sock : socks) zmq_recv(sock, nullptr, 0, 0);
  }
  void ToAll(uint8_t op) {
    for (void* sock : socks) zmq_send(sock, &op, 1, 0);
    for (void* sock : socks) zmq_recv(sock, nullptr, 0, 0);
  }
};

int RunWorker() {
  Worker w;
  std::stringstream eps(FLAGS_connect);
  for (std::string ep; std::getline(eps, ep, ',');) {
    void* sock = zmq_socket(w.ctx, ZMQ_DEALER);
    if (zmq_connect(sock, ep.c_str()) != 0) {
      std::fprintf(stderr, "kv_baseline: cannot connect %s: %s\n", ep.c_str(), zmq_strerror(zmq_errno()));
      return 1;
    }
    w.socks.push_back(sock);
  }
  if (w.socks.empty()) {
    std::fprintf(stderr, "kv_baseline: --connect names no server\n");
    return 1;
  }
  w.req.resize(w.socks.size());
  w.pos.resize(w.socks.size());
  const int64_t k = FLAGS_keys_per_batch, batch = 65536;
  // Every key once, in ascending batches (a worker takes every W-th), as ps_bench --prefill.
  std::vector<uint64_t> keys;
  std::vector<float> g(static_cast<size_t>(batch * kDim), 0.01f), v(static_cast<size_t>(k * kDim));
  const auto f0 = Clock::now();
  for (int64_t b = FLAGS_worker * batch; b < FLAGS_table_keys; b += int64_t{FLAGS_workers} * batch) {
    keys.clear();
    for (int64_t x = b; x < std::min(b + batch, FLAGS_table_keys); ++x) keys.push_back(static_cast<uint64_t>(x));
    w.Push(keys, g.data());
  }
  w.ToAll(kBarrier);
  std::printf("PREFILL worker=%d secs=%.3f\n", FLAGS_worker,
              std::chrono::duration<double>(Clock::now() - f0).count());
  // The steps' keys drawn before the clock starts, as ps_bench draws them.
  std::mt19937_64 rng(1234 + static_cast<uint64_t>(FLAGS_worker));
  std::uniform_int_distribution<uint64_t> key(0, static_cast<uint64_t>(FLAGS_table_keys) - 1);
  const int64_t total = FLAGS_warmup + FLAGS_iters, ring = std::min<int64_t>(total, 1024);
  std::vector<std::vector<uint64_t>> batches(static_cast<size_t>(ring), std::vector<uint64_t>(static_cast<size_t>(k)));
  for (auto& bk : batches) {
    for (auto& x : bk) x = key(rng);
  }
  Clock::time_point t0;
  for (int64_t i = 0; i < total; ++i) {
    if (i == FLAGS_warmup) t0 = Clock::now();
    const auto& bk = batches[static_cast<size_t>(i % ring)];
    w.Pull(bk, v.data());
    w.Push(bk, g.data());
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("RESULT mode=kv worker=%d keys=%lld iters=%d secs=%.6f keys_per_s=%.0f\n", FLAGS_worker,
              static_cast<long long>(k), FLAGS_iters, s, static_cast<double>(k) * FLAGS_iters / s);
  w.ToAll(kStop);
  for (void* sock : w.socks) zmq_close(sock);
  zmq_ctx_term(w.ctx);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("a plain C++ key-value server over raw ZeroMQ, the sparse benchmark's yardstick");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_role == "server" && !FLAGS_bind.empty()) return Server();
  if (FLAGS_role == "worker") return RunWorker();
  std::fprintf(stderr, "kv_baseline: --role=server --bind=EP or --role=worker --connect=EP[,EP...]\n");
  return 2;
}
