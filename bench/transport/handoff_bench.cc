// bench_handoff: how much of a small TCP round trip's time is the worker's thread
// structure, and would a leader/follower design (the waiting caller polls the socket
// itself) remove it (issue 17; docs/benchmarks.md, "Where a 4 KiB round trip's time
// goes")? Two processes (fork) over tcp://127.0.0.1: an echo ROUTER that answers on its
// own thread, as ps_bench's raw2 does (a fresh --bytes reply, one memcpy), and a client
// DEALER driven in one of three shapes. Plain bytes, no Tessera framing: only the thread
// structure differs. The first 8 bytes of a request are its id, echoed back.
//
//   direct   the caller sends and receives on the socket itself (raw2's shape)
//   reactor  Tessera's shape today: a loop thread owns the socket and zmq_polls it plus an
//            eventfd; the caller queues its request and writes the eventfd, the loop sends
//            it, receives the reply, copies it out and completes a mutex+condvar handle
//   leader   leader/follower: the loop thread exists, but a caller that waits becomes the
//            leader and polls the socket's ZMQ_FD itself, completing its own request (and
//            any other it finds); the loop watches the socket only while requests are
//            outstanding that no caller leads, so on a synchronous caller's path it is
//            never woken
//   race     leader, but the loop thread watches the socket all the time and reads what it
//            finds, as a reactor that lets callers use its socket would: what keeping the
//            loop off the socket is worth
//
// The variants run in turn, --rounds times, so the machine's drift hits them alike. One
// line per round with µs per round trip, then the median ratio of each to direct and the
// CPU µs and context switches per round trip of each process (getrusage: all threads,
// ZeroMQ's I/O threads included). --check_callers=N also runs reactor and leader with N
// concurrent callers and checks that every caller gets its own reply.
//
// Threads: see each client class. The echo process has one thread of its own (plus
// ZeroMQ's I/O thread); so does the client process's main thread, which is the caller.
#include <gflags/gflags.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/transport/proc_usage.h"
#include "common/clock.h"

DEFINE_int64(bytes, 4096, "request and reply size (at least 16)");
DEFINE_int32(iters, 3000, "round trips per variant and round");
DEFINE_int32(warmup, 200, "round trips before timing, per variant and round");
DEFINE_int32(rounds, 8, "rounds of all variants");
DEFINE_int32(check_callers, 0, "if > 1: also run reactor and leader with this many callers");
DEFINE_bool(drain_after_send, true,
            "leader: read what is ready after a send. false shows the lost wake-ups this "
            "prevents (--check_callers), which a 100 ms poll timeout then recovers");

namespace {

using tessera::Clock;

void Die(const char* what) {
  std::fprintf(stderr, "bench_handoff: %s: %s\n", what, zmq_strerror(zmq_errno()));
  std::exit(1);
}

using tessera::bench::Median;
using tessera::bench::Now;
using tessera::bench::Usage;

uint64_t IdOf(const void* p) {
  uint64_t id;
  std::memcpy(&id, p, 8);
  return id;
}

void Signal(int efd) {
  const uint64_t one = 1;
  if (write(efd, &one, 8) != 8) Die("eventfd write");
}
void Consume(int efd) {
  uint64_t n;
  if (read(efd, &n, 8) != 8) Die("eventfd read");
}

// A request's completion, what its caller waits on (Tessera's Handle, reduced). Shared,
// so the completing thread may notify after unlocking without outliving the caller's copy.
struct Handle {
  char* out = nullptr;
  std::condition_variable cv;
  bool done = false;
  // leader only, guarded by LeaderClient::mu_: the caller sleeps on cv as a follower;
  // it was made the leader.
  bool following = false, promoted = false;
};
using HandlePtr = std::shared_ptr<Handle>;

class Client {
 public:
  virtual ~Client() = default;
  // Sends req (bytes_ long, its id in front) and copies the reply into out.
  virtual void RoundTrip(const char* req, char* out) = 0;
};

void* Connect(void* ctx, const char* ep) {
  void* s = zmq_socket(ctx, ZMQ_DEALER);
  const int timeout_ms = 60000, linger = 0;  // a dead peer ends the run instead of hanging it
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
  if (zmq_connect(s, ep) != 0) Die("connect");
  return s;
}

int FdOf(void* s) {
  int fd = -1;
  size_t len = sizeof(fd);
  if (zmq_getsockopt(s, ZMQ_FD, &fd, &len) != 0) Die("ZMQ_FD");
  return fd;
}

// Receives one message if one is ready; false if none is.
bool TryRecv(void* s, zmq_msg_t* m) {
  zmq_msg_init(m);
  if (zmq_msg_recv(m, s, ZMQ_DONTWAIT) >= 0) return true;
  zmq_msg_close(m);
  if (zmq_errno() != EAGAIN) Die("recv");
  return false;
}

// The caller's thread is the only one.
class DirectClient final : public Client {
 public:
  DirectClient(void* ctx, const char* ep, size_t n) : s_(Connect(ctx, ep)), n_(n) {}
  ~DirectClient() override { zmq_close(s_); }
  void RoundTrip(const char* req, char* out) override {
    if (zmq_send(s_, req, n_, 0) < 0) Die("send");
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s_, 0) < 0) Die("recv");
    if (zmq_msg_size(&m) != n_ || IdOf(zmq_msg_data(&m)) != IdOf(req)) Die("a foreign reply");
    std::memcpy(out, zmq_msg_data(&m), n_);
    zmq_msg_close(&m);
  }

 private:
  void* s_;
  size_t n_;
};

// The loop thread owns the socket and pending_; callers touch only queue_ (under qmu_) and
// their own Handle (under its mutex, hmu_ here: one per client is enough for the bench).
class ReactorClient final : public Client {
 public:
  ReactorClient(void* ctx, const char* ep, size_t n)
      : s_(Connect(ctx, ep)), n_(n), efd_(eventfd(0, 0)), loop_([this] { Loop(); }) {}
  ~ReactorClient() override {
    {
      std::lock_guard<std::mutex> l(qmu_);
      stop_ = true;
    }
    Signal(efd_);
    loop_.join();
    zmq_close(s_);
    close(efd_);
  }
  void RoundTrip(const char* req, char* out) override {
    auto h = std::make_shared<Handle>();
    h->out = out;
    {
      std::lock_guard<std::mutex> l(qmu_);
      queue_.push_back({req, h});
    }
    Signal(efd_);
    std::unique_lock<std::mutex> l(hmu_);
    h->cv.wait(l, [&] { return h->done; });
  }

 private:
  void Loop() {
    zmq_pollitem_t items[2] = {{s_, 0, ZMQ_POLLIN, 0}, {nullptr, efd_, ZMQ_POLLIN, 0}};
    std::vector<std::pair<const char*, HandlePtr>> todo;
    for (;;) {
      if (zmq_poll(items, 2, -1) < 0) Die("zmq_poll");
      if (items[1].revents & ZMQ_POLLIN) {
        Consume(efd_);
        {
          std::lock_guard<std::mutex> l(qmu_);
          if (stop_) return;
          todo.swap(queue_);
        }
        for (auto& [req, h] : todo) {
          if (zmq_send(s_, req, n_, 0) < 0) Die("send");
          pending_[IdOf(req)] = std::move(h);
        }
        todo.clear();
      }
      zmq_msg_t m;
      while ((items[0].revents & ZMQ_POLLIN) && TryRecv(s_, &m)) {
        auto it = pending_.find(IdOf(zmq_msg_data(&m)));
        if (it == pending_.end() || zmq_msg_size(&m) != n_) Die("a foreign reply");
        HandlePtr h = std::move(it->second);
        pending_.erase(it);
        std::memcpy(h->out, zmq_msg_data(&m), n_);
        zmq_msg_close(&m);
        {
          std::lock_guard<std::mutex> l(hmu_);
          h->done = true;
        }
        h->cv.notify_one();
      }
    }
  }

  void* s_;
  size_t n_;
  int efd_;
  std::mutex qmu_, hmu_;
  std::vector<std::pair<const char*, HandlePtr>> queue_;
  bool stop_ = false;
  std::unordered_map<uint64_t, HandlePtr> pending_;
  std::thread loop_;
};

// mu_ guards the socket (every call into ZeroMQ, ZMQ_EVENTS included), pending_, leader_
// and the Handles' flags; nobody holds it while sleeping. Whoever holds it may send and
// receive, whichever thread it is; the leader (a caller, or the loop thread while no caller
// leads) is the one thread that sleeps in poll() on the socket's ZMQ_FD. ZMQ_FD is
// edge-triggered: any call into the socket may consume its signal while leaving a message
// to read, so every holder of mu_ ends with DrainLocked, which reads until ZMQ_EVENTS
// shows no POLLIN; the next arrival then signals the fd again. A reply found by a thread
// other than its caller wakes that caller: the leader through lead_efd_ (it sleeps in
// poll()), a follower through its condvar.
class LeaderClient final : public Client {
 public:
  LeaderClient(void* ctx, const char* ep, size_t n, bool loop_races)
      : s_(Connect(ctx, ep)),
        n_(n),
        loop_races_(loop_races),
        zfd_(FdOf(s_)),
        loop_efd_(eventfd(0, 0)),
        lead_efd_(eventfd(0, 0)),
        loop_([this] { Loop(); }) {}
  ~LeaderClient() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    Signal(loop_efd_);
    loop_.join();
    zmq_close(s_);
    close(loop_efd_);
    close(lead_efd_);
  }

  int lost_wakeups() {
    std::lock_guard<std::mutex> l(mu_);
    return lost_wakeups_;
  }

  void RoundTrip(const char* req, char* out) override {
    auto h = std::make_shared<Handle>();
    h->out = out;
    std::vector<HandlePtr> wake;
    std::unique_lock<std::mutex> l(mu_);
    if (zmq_send(s_, req, n_, 0) < 0) Die("send");
    pending_[IdOf(req)] = h;
    if (FLAGS_drain_after_send) DrainLocked(h.get(), &wake);  // it may have taken the signal
    while (!h->done) {
      if (leader_ == nullptr) {
        Lead(h.get(), &l, &wake);
        break;
      }
      h->following = true;
      h->cv.wait(l, [&] { return h->done || h->promoted; });
      h->following = h->promoted = false;
    }
    l.unlock();
    Notify(&wake);
  }

 private:
  void Notify(std::vector<HandlePtr>* wake) {
    for (auto& h : *wake) h->cv.notify_one();
    wake->clear();
  }

  // Receives every reply that is ready and completes it; `self` is the calling thread's
  // own request (nullptr for the loop), completed without a wake-up. Followers to notify
  // once mu_ is released go to `wake`.
  void DrainLocked(Handle* self, std::vector<HandlePtr>* wake) {
    for (;;) {
      int ev = 0;
      size_t len = sizeof(ev);
      if (zmq_getsockopt(s_, ZMQ_EVENTS, &ev, &len) != 0) Die("ZMQ_EVENTS");
      if (!(ev & ZMQ_POLLIN)) return;
      zmq_msg_t m;
      if (!TryRecv(s_, &m)) continue;
      auto it = pending_.find(IdOf(zmq_msg_data(&m)));
      if (it == pending_.end() || zmq_msg_size(&m) != n_) Die("a foreign reply");
      HandlePtr h = std::move(it->second);
      pending_.erase(it);
      std::memcpy(h->out, zmq_msg_data(&m), n_);
      zmq_msg_close(&m);
      h->done = true;
      if (h.get() == self) continue;
      if (h.get() == leader_) {
        lead_kicked_ = true;
        Signal(lead_efd_);
      } else if (h->following) {
        wake->push_back(std::move(h));
      }
    }
  }

  // The calling thread polls the socket until its own request `h` is complete, then hands
  // the lead on: to a waiting follower if there is one, else, while requests are still
  // outstanding, to the loop thread. Called and returns with *l held.
  void Lead(Handle* h, std::unique_lock<std::mutex>* l, std::vector<HandlePtr>* wake) {
    leader_ = h;
    while (!h->done) {
      l->unlock();
      Notify(wake);
      pollfd p[2] = {{zfd_, POLLIN, 0}, {lead_efd_, POLLIN, 0}};
      const int r = poll(p, 2, FLAGS_drain_after_send ? -1 : 100);
      if (r < 0 && errno != EINTR) Die("poll");
      l->lock();
      DrainLocked(h, wake);
      if (r == 0 && h->done) ++lost_wakeups_;
    }
    leader_ = nullptr;
    if (lead_kicked_) {  // a stale count would wake the next leader for nothing
      Consume(lead_efd_);
      lead_kicked_ = false;
    }
    if (pending_.empty()) return;
    for (auto& [id, f] : pending_) {
      if (f->following && !f->promoted) {
        f->promoted = true;
        wake->push_back(f);
        return;
      }
    }
    Signal(loop_efd_);  // outstanding requests nobody waits on: the loop watches them
  }

  // Watches the socket only while requests are outstanding and no caller leads (never, in
  // this bench's synchronous callers); otherwise sleeps on loop_efd_ alone, so a reply
  // does not wake it next to the leader. With loop_races_, always watches and drains.
  void Loop() {
    std::vector<HandlePtr> wake;
    for (;;) {
      std::unique_lock<std::mutex> l(mu_);
      if (stop_) return;
      const bool watch = loop_races_ || (leader_ == nullptr && !pending_.empty());
      if (watch) DrainLocked(nullptr, &wake);
      l.unlock();
      Notify(&wake);
      pollfd p[2] = {{loop_efd_, POLLIN, 0}, {watch ? zfd_ : -1, POLLIN, 0}};
      if (poll(p, 2, -1) < 0 && errno != EINTR) Die("poll");
      if (p[0].revents & POLLIN) Consume(loop_efd_);
    }
  }

  void* s_;
  size_t n_;
  const bool loop_races_;
  const int zfd_;
  int loop_efd_, lead_efd_;
  std::mutex mu_;
  std::unordered_map<uint64_t, HandlePtr> pending_;
  Handle* leader_ = nullptr;
  bool lead_kicked_ = false, stop_ = false;
  int lost_wakeups_ = 0;  // replies found only after a poll timeout
  std::thread loop_;
};

const char* const kVariants[] = {"direct", "reactor", "leader", "race"};
constexpr size_t kNumVariants = 4;

std::unique_ptr<Client> MakeClient(size_t v, void* ctx, const char* ep, size_t n) {
  if (v == 0) return std::make_unique<DirectClient>(ctx, ep, n);
  if (v == 1) return std::make_unique<ReactorClient>(ctx, ep, n);
  return std::make_unique<LeaderClient>(ctx, ep, n, /*loop_races=*/v == 3);
}

// Control messages are 4 bytes (requests are at least 16): a slot of the shared usage
// table for the echo side to fill, or -1 to stop.
void Control(void* ctl, int32_t slot) {
  char ack[4];
  if (zmq_send(ctl, &slot, 4, 0) != 4 || zmq_recv(ctl, ack, 4, 0) != 4) Die("control");
}

// Binds a free port and passes its endpoint to the client through `ep_fd`.
void Echo(int ep_fd, Usage* slots) {
  void* ctx = zmq_ctx_new();
  void* r = zmq_socket(ctx, ZMQ_ROUTER);
  char ep[256] = {};
  size_t ep_len = sizeof(ep);
  if (zmq_bind(r, "tcp://127.0.0.1:*") != 0 ||
      zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &ep_len) != 0)
    Die("bind");
  if (write(ep_fd, ep, std::strlen(ep)) <= 0) Die("passing the endpoint");
  close(ep_fd);
  for (;;) {
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&id, r, 0) < 0 || zmq_msg_recv(&body, r, 0) < 0) Die("echo recv");
    const size_t len = zmq_msg_size(&body);
    int32_t slot = 0;
    if (len == 4) {
      std::memcpy(&slot, zmq_msg_data(&body), 4);
      if (slot >= 0) slots[slot] = Now();
    }
    zmq_msg_send(&id, r, ZMQ_SNDMORE);
    zmq_msg_t reply;  // a fresh reply, as a server's pull answer is
    zmq_msg_init_size(&reply, len);
    std::memcpy(zmq_msg_data(&reply), zmq_msg_data(&body), len);
    zmq_msg_close(&body);
    zmq_msg_send(&reply, r, 0);
    if (slot < 0) break;
  }
  zmq_close(r);
  zmq_ctx_term(ctx);
}

// `iters` round trips on `c`, the ids starting at *next_id.
void Run(Client* c, int iters, size_t n, uint64_t* next_id, std::vector<char>* req,
         std::vector<char>* out) {
  for (int i = 0; i < iters; ++i) {
    const uint64_t id = (*next_id)++;
    std::memcpy(req->data(), &id, 8);
    c->RoundTrip(req->data(), out->data());
    if (IdOf(out->data()) != id || (*out)[n - 1] != (*req)[n - 1]) Die("a wrong reply");
  }
}

// N callers share one client; each checks it gets its own replies (ids are disjoint).
void CheckCallers(void* ctx, const char* ep, size_t n) {
  for (size_t v = 1; v < kNumVariants; ++v) {
    auto c = MakeClient(v, ctx, ep, n);
    const int per = FLAGS_iters;
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int k = 0; k < FLAGS_check_callers; ++k)
      ts.emplace_back([&, k] {
        std::vector<char> req(n, static_cast<char>(k + 1)), out(n);
        uint64_t id = (static_cast<uint64_t>(k) + 1) << 40;
        Run(c.get(), per, n, &id, &req, &out);
      });
    for (auto& t : ts) t.join();
    const double us = std::chrono::duration<double>(Clock::now() - t0).count() * 1e6;
    std::printf("check %s callers=%d: every reply its caller's, %.1f us per round trip "
                "(all callers)", kVariants[v], FLAGS_check_callers, us / (per * FLAGS_check_callers));
    if (auto* lc = dynamic_cast<LeaderClient*>(c.get()))
      std::printf(", %d lost wake-ups", lc->lost_wakeups());
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  const size_t n = static_cast<size_t>(FLAGS_bytes);
  if (n < 16) Die("--bytes must be at least 16");
  // Usage per (round, variant): [client start, client end, echo start, echo end].
  const size_t cells = static_cast<size_t>(FLAGS_rounds) * kNumVariants;
  Usage* const use = tessera::bench::MapSharedUsage(4 * cells);
  if (use == nullptr) return 1;
  int ep_pipe[2];
  if (pipe(ep_pipe) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a client that died does not leave the echo behind
    close(ep_pipe[0]);
    Echo(ep_pipe[1], use);
    return 0;
  }
  close(ep_pipe[1]);
  char ep[256] = {};
  if (read(ep_pipe[0], ep, sizeof(ep) - 1) <= 0) Die("no endpoint from the echo side");
  close(ep_pipe[0]);
  void* ctx = zmq_ctx_new();
  void* ctl = Connect(ctx, ep);
  std::unique_ptr<Client> clients[kNumVariants];
  for (size_t v = 0; v < kNumVariants; ++v) clients[v] = MakeClient(v, ctx, ep, n);
  std::vector<char> req(n, 7), out(n);
  uint64_t next_id = 1;
  std::vector<double> us[kNumVariants];
  for (int r = 0; r < FLAGS_rounds; ++r) {
    std::printf("round %d load=", r);
    if (FILE* l = std::fopen("/proc/loadavg", "r")) {
      double a = 0;
      if (std::fscanf(l, "%lf", &a) == 1) std::printf("%.2f", a);
      std::fclose(l);
    }
    for (size_t v = 0; v < kNumVariants; ++v) {
      Client* c = clients[v].get();
      Run(c, FLAGS_warmup, n, &next_id, &req, &out);
      const size_t cell = static_cast<size_t>(r) * kNumVariants + v;
      Control(ctl, static_cast<int32_t>(4 * cell + 2));
      const Usage u0 = Now();
      const auto t0 = Clock::now();
      Run(c, FLAGS_iters, n, &next_id, &req, &out);
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      const Usage u1 = Now();
      Control(ctl, static_cast<int32_t>(4 * cell + 3));
      use[4 * cell] = u0;
      use[4 * cell + 1] = u1;
      us[v].push_back(t / FLAGS_iters * 1e6);
      std::printf(" %s=%.1f", kVariants[v], us[v].back());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("median us per round trip (bytes=%zu iters=%d rounds=%d):", n, FLAGS_iters,
              FLAGS_rounds);
  for (size_t v = 0; v < kNumVariants; ++v) std::printf(" %s=%.1f", kVariants[v], Median(us[v]));
  std::printf("\nmedian ratio to direct:");
  for (size_t v = 1; v < kNumVariants; ++v) {
    std::vector<double> q;
    for (int r = 0; r < FLAGS_rounds; ++r) q.push_back(us[v][r] / us[0][r]);
    std::printf(" %s=%.3f", kVariants[v], Median(q));
  }
  std::printf("\nmedian per round trip, CPU us / context switches, client + echo:");
  for (size_t v = 0; v < kNumVariants; ++v) {
    std::vector<double> cc, cs, ec, es;
    for (int r = 0; r < FLAGS_rounds; ++r) {
      const Usage* u = use + 4 * (static_cast<size_t>(r) * kNumVariants + v);
      cc.push_back((u[1].cpu_us - u[0].cpu_us) / FLAGS_iters);
      cs.push_back((u[1].switches - u[0].switches) / FLAGS_iters);
      ec.push_back((u[3].cpu_us - u[2].cpu_us) / FLAGS_iters);
      es.push_back((u[3].switches - u[2].switches) / FLAGS_iters);
    }
    std::printf(" %s=%.1f/%.1f + %.1f/%.1f", kVariants[v], Median(cc), Median(cs), Median(ec),
                Median(es));
  }
  std::printf("\n");
  if (FLAGS_check_callers > 1) CheckCallers(ctx, ep, n);
  for (auto& c : clients) c.reset();
  Control(ctl, -1);
  zmq_close(ctl);
  zmq_ctx_term(ctx);
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
