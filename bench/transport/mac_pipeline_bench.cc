// bench_mac_pipeline: does sealing a large message in tagged fragments, pipelined with
// its transfer, bring --auth=mac's round trip near --auth=none's (docs/benchmarks-auth.md,
// "Pipelined sealing")? An echo of --bytes over tcp://127.0.0.1 between two processes
// (fork; raw ZeroMQ PAIR sockets), in the shape of a dense push+pull: the client sends
// the bytes, the server checks them, copies them into its reply buffer (a pull's answer)
// and sends that back; the client checks it and copies it into its "model".
//
//   none    one message, no tag
//   mac     one message + a trailer with one wire::FrameMac tag over it (today's framing)
//   fragF   F messages, each a slice + its own trailer: the sender seals slice k+1 while
//           ZeroMQ's I/O thread sends slice k; the receiver verifies slice k (and copies it
//           into a reassembly buffer) while k+1 is on the wire
//   splitF  F messages without tags: what fragmenting alone costs or saves
//   late    one message [seq, data], sent before it is sealed, then the tag as a message
//           of its own: the sender's seal overlaps the transfer (the receiver's check
//           cannot: it starts when the data has arrived)
//
// The variants run in turn, --rounds times, so the machine's drift hits them alike. One
// line per round with µs per round trip, then the median ratio of each to none, and the
// CPU µs and context switches per round trip of both processes together (all threads,
// ZeroMQ's I/O threads included): on a machine with C cores no variant can take less
// wall time than CPU / C, however well its stages overlap.
#include <gflags/gflags.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/transport/proc_usage.h"
#include "common/clock.h"
#include "wire/alloc.h"
#include "wire/mac_auth.h"

DEFINE_int64(bytes, 1 << 20, "message size");
DEFINE_int32(iters, 300, "round trips per variant and round");
DEFINE_int32(warmup, 20, "round trips before timing, per variant and round");
DEFINE_int32(rounds, 5, "rounds of all variants");
DEFINE_string(fragments, "4,8,16", "fragment counts to try (tagged)");
DEFINE_string(splits, "", "fragment counts to try without tags");
DEFINE_bool(late, true, "also try the tag as a message of its own, sent after the data");

namespace {

using namespace tessera;
using namespace tessera::wire;

void Die(const char* what) {
  std::fprintf(stderr, "bench_mac_pipeline: %s: %s\n", what, zmq_strerror(zmq_errno()));
  std::exit(1);
}

// One direction's sealing (or opening) state.
struct Dir {
  std::unique_ptr<FrameMac> mac;
  uint64_t seq = 0;
};

std::unique_ptr<FrameMac> MakeMac(uint8_t salt) {
  MacKey k{};
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(i * 7 + salt);
  auto m = FrameMac::Create(MacPrimitive::kPoly1305, k);
  if (!m.ok()) std::exit(1);
  return std::move(m).value();
}

constexpr int kLate = 1 << 20;  // the variant `late`, among the fragment counts

// Sends `data` as `f` fragments (f = 0: one message without a trailer; f = 1: today's
// framing; f < 0: -f fragments without trailers). Slices are sent without a copy: `data`
// outlives the send, and is not written again before the peer answered, which it does
// only after it received every fragment.
void SendMsg(void* s, const char* data, size_t n, int f, Dir* d) {
  if (f == kLate) {
    const uint64_t seq = ++d->seq;
    zmq_msg_t m;
    zmq_msg_init_data(&m, const_cast<char*>(data), n, nullptr, nullptr);
    if (zmq_send(s, &seq, 8, ZMQ_SNDMORE) < 0 || zmq_msg_send(&m, s, 0) < 0) Die("send");
    const std::span<const std::byte> frames[] = {{reinterpret_cast<const std::byte*>(data), n}};
    auto tag = d->mac->Compute(seq, frames);
    if (!tag.ok()) Die("sealing");
    if (zmq_send(s, tag->data(), kMacTagBytes, 0) < 0) Die("send tag");
    return;
  }
  const int parts = std::max(std::abs(f), 1);
  const size_t slice = (n + static_cast<size_t>(parts) - 1) / static_cast<size_t>(parts);
  for (int k = 0; k < parts; ++k) {
    const size_t off = std::min(n, slice * static_cast<size_t>(k)), len = std::min(slice, n - off);
    zmq_msg_t m;
    zmq_msg_init_data(&m, const_cast<char*>(data + off), len, nullptr, nullptr);
    if (zmq_msg_send(&m, s, f > 0 ? ZMQ_SNDMORE : 0) < 0) Die("send");
    if (f <= 0) continue;
    uint8_t trailer[8 + kMacTagBytes];
    const uint64_t seq = ++d->seq;
    std::memcpy(trailer, &seq, 8);
    const std::span<const std::byte> frames[] = {
        {reinterpret_cast<const std::byte*>(data + off), len}};
    auto tag = d->mac->Compute(seq, frames);
    if (!tag.ok()) Die("sealing");
    std::memcpy(trailer + 8, tag->data(), kMacTagBytes);
    if (zmq_send(s, trailer, sizeof(trailer), 0) < 0) Die("send trailer");
  }
}

// Receives what SendMsg sent into `out` (n bytes), verifying every fragment before it is
// copied. f = 0 and f = 1 copy the one message (the client into its model; the server's
// copy is its reply). Returns false when a tag did not verify.
bool RecvMsg(void* s, char* out, size_t n, int f, Dir* d) {
  if (f == kLate) {
    uint64_t seq = 0;
    zmq_msg_t body;
    zmq_msg_init(&body);
    if (zmq_recv(s, &seq, 8, 0) != 8 || zmq_msg_recv(&body, s, 0) < 0) Die("recv");
    if (seq <= d->seq) return false;
    const size_t len = zmq_msg_size(&body);
    // Computed while the tag is still on its way; compared once it is here.
    const std::span<const std::byte> frames[] = {
        {static_cast<const std::byte*>(zmq_msg_data(&body)), len}};
    auto tag = d->mac->Compute(seq, frames);
    uint8_t want[kMacTagBytes];
    if (zmq_recv(s, want, sizeof(want), 0) != sizeof(want)) Die("recv tag");
    if (!tag.ok() || !TagsEqual(*tag, want) || len != n) return false;
    d->seq = seq;
    std::memcpy(out, zmq_msg_data(&body), n);
    zmq_msg_close(&body);
    return true;
  }
  const int parts = std::max(std::abs(f), 1);
  size_t off = 0;
  for (int k = 0; k < parts; ++k) {
    zmq_msg_t body;
    zmq_msg_init(&body);
    if (zmq_msg_recv(&body, s, 0) < 0) Die("recv");
    const size_t len = zmq_msg_size(&body);
    if (f > 0) {
      uint8_t trailer[8 + kMacTagBytes];
      if (zmq_recv(s, trailer, sizeof(trailer), 0) != sizeof(trailer)) Die("recv trailer");
      uint64_t seq;
      std::memcpy(&seq, trailer, 8);
      if (seq <= d->seq) return false;
      const std::span<const std::byte> frames[] = {
          {static_cast<const std::byte*>(zmq_msg_data(&body)), len}};
      auto tag = d->mac->Compute(seq, frames);
      if (!tag.ok() || !TagsEqual(*tag, std::span<const uint8_t>(trailer + 8, kMacTagBytes)))
        return false;
      d->seq = seq;
    }
    std::memcpy(out + off, zmq_msg_data(&body), std::min(len, n - off));
    off += len;
    zmq_msg_close(&body);
  }
  return off == n;
}

void AddCounts(const std::string& list, int sign, std::vector<int>* v) {
  for (size_t p = 0; p < list.size();) {
    size_t q = list.find(',', p);
    if (q == std::string::npos) q = list.size();
    v->push_back(sign * std::stoi(list.substr(p, q - p)));
    p = q + 1;
  }
}

std::vector<int> Variants() {
  std::vector<int> v = {0, 1};
  AddCounts(FLAGS_fragments, 1, &v);
  AddCounts(FLAGS_splits, -1, &v);
  if (FLAGS_late) v.push_back(kLate);
  return v;
}

using tessera::bench::Median;
using tessera::bench::Now;
using tessera::bench::Usage;
using tessera::bench::PerIter;

std::string Name(int f) {
  if (f == kLate) return "late";
  return f == 0   ? "none"
         : f == 1 ? "mac"
         : f > 0  ? "frag" + std::to_string(f)
                  : "split" + std::to_string(-f);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  const size_t n = static_cast<size_t>(FLAGS_bytes);
  const std::vector<int> variants = Variants();
  const int per = FLAGS_warmup + FLAGS_iters;
  // Usage per round trip of each process per (round, variant), timed part only; the
  // second half is the echo side's.
  const size_t cells = static_cast<size_t>(FLAGS_rounds) * variants.size();
  Usage* const use = tessera::bench::MapSharedUsage(2 * cells);
  if (use == nullptr) return 1;
  // The client binds a free port and passes the endpoint to the echo side through a pipe.
  int ep_pipe[2];
  if (pipe(ep_pipe) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  TuneAllocatorForLargeMessages();
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_PAIR);
  // A peer that died ends the run with an error instead of a hang.
  const int timeout_ms = 60000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
  zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
  // Both directions' keys differ, as a session's do.
  Dir c2s{MakeMac(1)}, s2c{MakeMac(2)};
  std::vector<char> in(n), out(n, 1);
  char ep[256] = {};
  if (child == 0) {  // the echo side
    close(ep_pipe[1]);
    if (read(ep_pipe[0], ep, sizeof(ep) - 1) <= 0) Die("no endpoint from the client");
    if (zmq_connect(s, ep) != 0) Die("connect");
    for (int r = 0; r < FLAGS_rounds; ++r) {
      for (size_t v = 0; v < variants.size(); ++v) {
        Usage u0;
        for (int i = 0; i < per; ++i) {
          if (i == FLAGS_warmup) u0 = Now();
          if (!RecvMsg(s, in.data(), n, variants[v], &c2s)) Die("a tag did not verify");
          SendMsg(s, in.data(), n, variants[v], &s2c);
        }
        use[cells + static_cast<size_t>(r) * variants.size() + v] = PerIter(u0, Now(), FLAGS_iters);
      }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
  }
  close(ep_pipe[0]);
  size_t ep_len = sizeof(ep);
  if (zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
      zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &ep_len) != 0)
    Die("bind");
  if (write(ep_pipe[1], ep, std::strlen(ep)) <= 0) Die("passing the endpoint");
  close(ep_pipe[1]);
  std::vector<std::vector<double>> us(variants.size());
  for (int r = 0; r < FLAGS_rounds; ++r) {
    std::printf("round %d load=", r);
    if (FILE* l = std::fopen("/proc/loadavg", "r")) {
      double a = 0;
      if (std::fscanf(l, "%lf", &a) == 1) std::printf("%.2f", a);
      std::fclose(l);
    }
    for (size_t v = 0; v < variants.size(); ++v) {
      Clock::time_point t0;
      Usage u0;
      for (int i = 0; i < per; ++i) {
        if (i == FLAGS_warmup) {
          t0 = Clock::now();
          u0 = Now();
        }
        SendMsg(s, out.data(), n, variants[v], &c2s);
        if (!RecvMsg(s, in.data(), n, variants[v], &s2c)) Die("a tag did not verify");
      }
      const double t = std::chrono::duration<double>(Clock::now() - t0).count() / FLAGS_iters * 1e6;
      us[v].push_back(t);
      use[static_cast<size_t>(r) * variants.size() + v] = PerIter(u0, Now(), FLAGS_iters);
      std::printf(" %s=%.1f", Name(variants[v]).c_str(), t);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  zmq_close(s);
  zmq_ctx_term(ctx);
  int status = 0;
  waitpid(child, &status, 0);
  const std::vector<double>& none = us[0];
  std::printf("median ratio to none (bytes=%zu):", n);
  for (size_t v = 1; v < variants.size(); ++v) {
    std::vector<double> q;
    for (int r = 0; r < FLAGS_rounds; ++r)
      q.push_back(us[v][static_cast<size_t>(r)] / none[static_cast<size_t>(r)]);
    std::printf(" %s=%.3f", Name(variants[v]).c_str(), Median(q));
  }
  std::printf("\nmedian per round trip, both processes, CPU us (context switches):");
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<double> c, w;
    for (int r = 0; r < FLAGS_rounds; ++r) {
      const size_t i = static_cast<size_t>(r) * variants.size() + v;
      c.push_back(use[i].cpu_us + use[cells + i].cpu_us);
      w.push_back(use[i].switches + use[cells + i].switches);
    }
    std::printf(" %s=%.1f(%.1f)", Name(variants[v]).c_str(), Median(c), Median(w));
  }
  std::printf("\n");
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
