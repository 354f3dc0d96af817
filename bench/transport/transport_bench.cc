// bench_transport: what our transport costs over raw ZeroMQ, and what allocator tuning
// buys for large messages. Prints one markdown table (docs/benchmarks-transport.md).
//
// For each payload size, a client thread sends a message to an echo server thread over
// tcp://127.0.0.1 and waits for the echo (one message in flight):
//   ours: OutMessage/InMessage through wire::Socket (DEALER -> ROUTER): zero-copy send,
//         full validation on both sides, the server echoes TakePayload() zero-copy;
//   raw:  zmq_send / zmq_recv of the same bytes (DEALER -> ROUTER), the server echoes the
//         received zmq_msg_t;
//   memcpy: one copy of the same size, for scale.
// GB/s for the transports counts the payload in both directions (2 * size per round trip).
// Every cell is the best of --repeats runs of at least --min_time_ms each.
#include <gflags/gflags.h>
#include <zmq.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "wire/alloc.h"
#include "wire/socket.h"

DEFINE_string(sizes, "4096,65536,1048576,16777216,67108864", "payload sizes in bytes");
DEFINE_int32(min_time_ms, 1000, "minimum measuring time per cell");
DEFINE_int32(repeats, 3, "runs per cell; the best is reported");
DEFINE_bool(tune_allocator, true, "call wire::TuneAllocatorForLargeMessages() first");
DEFINE_bool(raw, true, "measure raw ZeroMQ and memcpy (off: ours only, for profiling)");
DEFINE_bool(ours, true, "measure our transport (off: raw only, for profiling)");

namespace {

using namespace tessera;
using namespace tessera::wire;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Runs `one` (one round trip or copy) for at least min_time; returns operations/s.
template <typename F>
double Rate(F one) {
  one();  // warm-up: connections, first-touch of buffers
  const auto t0 = Clock::now();
  long n = 0;
  while (Seconds(Clock::now() - t0) * 1000 < FLAGS_min_time_ms || n < 3) {
    one();
    ++n;
  }
  return static_cast<double>(n) / Seconds(Clock::now() - t0);
}

void Fail(const std::string& what) {
  fprintf(stderr, "bench_transport: %s\n", what.c_str());
  exit(1);
}

// ---------------------------------------------------------------------- ours

// A DEALER client and a ROUTER echo server thread, through wire::Socket.
class OursPair {
 public:
  OursPair(const std::shared_ptr<Context>& ctx, size_t size) : n_(size / sizeof(float)) {
    auto router = Socket::Create(ctx, SocketType::kRouter);
    auto dealer = Socket::Create(ctx, SocketType::kDealer);
    if (!router.ok() || !dealer.ok()) Fail("socket");
    router_ = std::move(router).value();
    client_ = std::move(dealer).value();
    Result<std::string> ep = router_->Bind("tcp://127.0.0.1:*");
    if (!ep.ok()) Fail(ep.status().ToString());
    server_ = std::thread([s = router_.get()] { Serve(*s); });
    if (!client_->Connect(*ep).ok()) Fail("connect");
    values_ = Buffer::Zeros(n_ * sizeof(float));
  }
  ~OursPair() {
    if (!client_->Send(OutMessage(Op::SHUTDOWN)).ok()) Fail("shutdown");
    server_.join();
  }
  void RoundTrip() {
    OutMessage m(Op::PUSH);
    auto d = m.header().getBody().initData();
    d.setBegin(0);
    d.setEnd(n_);
    if (!m.AddPayload(values_, DType::kF32, n_).ok()) Fail("payload");
    Result<InMessage> r = Call(*client_, std::move(m), Deadline::FromMillis(60000));
    if (!r.ok() || r->payload(0).size() != values_.size()) Fail("client: " + r.status().ToString());
  }

 private:
  static void Serve(Socket& s) {
    for (;;) {
      Result<InMessage> r = s.Recv(Deadline::FromMillis(60000));
      if (!r.ok()) Fail("server recv: " + r.status().ToString());
      if (r->op() == Op::SHUTDOWN) return;
      OutMessage rep = MakeReply(*r, Op::RESPONSE);
      Status st = rep.AddPayload(r->TakePayload(0), r->payload_dtype(0), r->payload_elements(0));
      if (st.ok()) st = s.Send(std::move(rep));
      if (!st.ok()) Fail("server send: " + st.ToString());
    }
  }
  const uint64_t n_;
  std::unique_ptr<Socket> router_, client_;
  std::thread server_;
  Buffer values_;
};

// ---------------------------------------------------------------------- raw ZeroMQ

// The same exchange with plain libzmq calls: zmq_send/zmq_recv on the client, the server
// echoes the received zmq_msg_t.
class RawPair {
 public:
  RawPair(const std::shared_ptr<Context>& ctx, size_t size)
      : router_(zmq_socket(ctx->raw(), ZMQ_ROUTER)),
        dealer_(zmq_socket(ctx->raw(), ZMQ_DEALER)),
        out_(size, 0),
        in_(size) {
    int linger = 0;
    zmq_setsockopt(router_, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(dealer_, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(router_, "tcp://127.0.0.1:*") != 0) Fail("raw bind");
    char ep[256];
    size_t len = sizeof(ep);
    zmq_getsockopt(router_, ZMQ_LAST_ENDPOINT, ep, &len);
    server_ = std::thread([r = router_] { Serve(r); });
    if (zmq_connect(dealer_, ep) != 0) Fail("raw connect");
  }
  ~RawPair() {
    zmq_send(dealer_, "", 0, 0);  // empty frame: stop
    char dummy;
    zmq_recv(dealer_, &dummy, 1, 0);
    server_.join();
    zmq_close(dealer_);
    zmq_close(router_);
  }
  void RoundTrip() {
    const size_t size = out_.size();
    if (zmq_send(dealer_, out_.data(), size, 0) < 0) Fail("raw client send");
    if (zmq_recv(dealer_, in_.data(), size, 0) != static_cast<int>(size)) Fail("raw client recv");
  }

 private:
  static void Serve(void* router) {
    for (;;) {
      zmq_msg_t id, body;
      zmq_msg_init(&id);
      zmq_msg_init(&body);
      if (zmq_msg_recv(&id, router, 0) < 0 || zmq_msg_recv(&body, router, 0) < 0) Fail("raw recv");
      const bool stop = zmq_msg_size(&body) == 0;
      if (zmq_msg_send(&id, router, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, router, 0) < 0) {
        Fail("raw send");
      }
      if (stop) return;
    }
  }
  void* const router_;
  void* const dealer_;
  std::vector<char> out_, in_;
  std::thread server_;
};

// ---------------------------------------------------------------------- memcpy

class Copy {
 public:
  // Both buffers page-aligned: two plain mallocs land 16 bytes apart modulo 4 KiB, and on
  // this CPU such a pair copies at ~1 GB/s instead of ~20 (4K aliasing), which would make
  // the memcpy column measure the allocator's layout instead of memory bandwidth.
  // Small copies are batched so the clock read in Rate() does not dominate.
  explicit Copy(size_t size)
      : size_(size),
        src_(static_cast<char*>(std::aligned_alloc(4096, Round(size)))),
        dst_(static_cast<char*>(std::aligned_alloc(4096, Round(size)))),
        batch_(std::max<size_t>(1, (1 << 20) / size)) {
    std::memset(src_, 1, size);
    std::memset(dst_, 0, size);
  }
  ~Copy() {
    std::free(src_);
    std::free(dst_);
  }
  void Batch() {
    for (size_t i = 0; i < batch_; ++i) {
      std::memcpy(dst_, src_, size_);
      asm volatile("" : : "r"(dst_) : "memory");  // keep the copy
    }
  }
  size_t batch() const { return batch_; }

 private:
  static size_t Round(size_t n) { return (n + 4095) / 4096 * 4096; }
  const size_t size_;
  char* const src_;
  char* const dst_;
  const size_t batch_;
};

// Microseconds to build, encode and validate one data-plane header (no sockets): the
// per-message CPU cost our transport adds on top of ZeroMQ.
double CodecMicros() {
  Buffer values = Buffer::Zeros(4096);
  const int n = 20000;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    OutMessage m(Op::PUSH);
    auto d = m.header().getBody().initData();
    d.setEnd(1024);
    if (!m.AddPayload(values, DType::kF32, 1024).ok()) Fail("payload");
    std::vector<std::byte> h = m.EncodeHeader();
    Result<InMessage> r = Decode("", Buffer::CopyOf(h), {values}, {});
    if (!r.ok()) Fail(r.status().ToString());
  }
  return Seconds(Clock::now() - t0) * 1e6 / n;
}

std::string SizeName(size_t s) {
  if (s >= (1 << 20) && s % (1 << 20) == 0) return std::to_string(s >> 20) + " MiB";
  if (s >= 1024 && s % 1024 == 0) return std::to_string(s >> 10) + " KiB";
  return std::to_string(s) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_tune_allocator && !TuneAllocatorForLargeMessages()) Fail("mallopt refused");
  auto ctx = Context::Create();
  if (!ctx.ok()) Fail(ctx.status().ToString());
  std::vector<size_t> sizes;
  for (size_t pos = 0; pos < FLAGS_sizes.size();) {
    size_t next = FLAGS_sizes.find(',', pos);
    if (next == std::string::npos) next = FLAGS_sizes.size();
    sizes.push_back(std::stoull(FLAGS_sizes.substr(pos, next - pos)));
    pos = next + 1;
  }
  printf("allocator tuned: %s; best of %d runs of >= %d ms; GB/s = 2 * size * round trips/s\n\n",
         FLAGS_tune_allocator ? "yes" : "no", FLAGS_repeats, FLAGS_min_time_ms);
  printf("build + encode + validate one push header: %.2f us\n\n", CodecMicros());
  printf("| payload | ours rt/s | ours GB/s | raw rt/s | raw GB/s | ours/raw | memcpy GB/s |\n");
  printf("|--------:|----------:|----------:|---------:|---------:|---------:|------------:|\n");
  for (size_t s : sizes) {
    // Interleaved repeats: on a shared machine all three see the same background load.
    OursPair ours_pair(*ctx, s);
    std::unique_ptr<RawPair> raw_pair(FLAGS_raw ? new RawPair(*ctx, s) : nullptr);
    Copy copier(s);
    double ours = 0, raw = FLAGS_raw ? 0 : 1, copy = 0;
    for (int i = 0; i < FLAGS_repeats; ++i) {
      if (FLAGS_ours) ours = std::max(ours, Rate([&] { ours_pair.RoundTrip(); }));
      if (!raw_pair) continue;
      raw = std::max(raw, Rate([&] { raw_pair->RoundTrip(); }));
      copy = std::max(copy, Rate([&] { copier.Batch(); }) * static_cast<double>(copier.batch()));
    }
    printf("| %s | %.0f | %.2f | %.0f | %.2f | %.2f | %.2f |\n", SizeName(s).c_str(), ours,
           2.0 * s * ours / 1e9, raw, 2.0 * s * raw / 1e9, ours / raw, s * copy / 1e9);
    fflush(stdout);
  }
  return 0;
}
