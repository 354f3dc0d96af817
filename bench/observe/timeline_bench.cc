// Cost of one timeline span (common/timeline.h) with --timeline off and on, from 1 and 2
// threads, against the loop alone and one clock read, all measured in this run. Prints
// ns per span, best of 5 runs. Usage: timeline_bench [spans_per_run]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/timeline.h"

namespace {

using Clock = std::chrono::steady_clock;
volatile int64_t g_sink = 0;

template <typename F>
double BestNsPer(int64_t n, int threads, F body) {
  double best = 1e30;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 1; t < threads; ++t) ts.emplace_back([&] { body(n); });
    body(n);
    for (auto& t : ts) t.join();
    best = std::min(best, std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(n));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2000000;
  auto loop = [](int64_t k) {
    for (int64_t i = 0; i < k; ++i) g_sink = g_sink + i;
  };
  auto clock_read = [](int64_t k) {
    for (int64_t i = 0; i < k; ++i) g_sink = g_sink + tessera::timeline::NowMicros();
  };
  auto spans = [](int64_t k) {
    for (int64_t i = 0; i < k; ++i) {
      tessera::timeline::Span s("push", "comm", "step", i);
      g_sink = g_sink + i;
    }
  };
  std::printf("timeline span cost, %lld spans per run, best of 5 (ns per iteration)\n", static_cast<long long>(n));
  std::printf("| case | 1 thread | 2 threads |\n|---|--:|--:|\n");
  std::printf("| loop alone (baseline) | %.1f | %.1f |\n", BestNsPer(n, 1, loop), BestNsPer(n, 2, loop));
  std::printf("| one NowMicros() | %.1f | %.1f |\n", BestNsPer(n, 1, clock_read), BestNsPer(n, 2, clock_read));
  std::printf("| span, timeline off | %.1f | %.1f |\n", BestNsPer(n, 1, spans), BestNsPer(n, 2, spans));
  const std::string path = "/tmp/timeline_bench." + std::to_string(::getpid()) + ".json";
  tessera::timeline::Options o;
  o.path = path;
  o.pid = 1;
  o.process_name = "bench";
  if (!tessera::timeline::Start(o).ok()) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 1;
  }
  // Fewer spans while on: each is kept in memory until the flusher writes it.
  const int64_t on = std::min<int64_t>(n, 200000);
  const double on1 = BestNsPer(on, 1, spans), on2 = BestNsPer(on, 2, spans);
  const auto t0 = Clock::now();
  tessera::timeline::Stop();
  const double stop_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::printf("| span, timeline on | %.1f | %.1f |\n", on1, on2);
  std::printf("\nStop() (writes what the last flush left) took %.1f ms; file %s removed\n", stop_ms, path.c_str());
  std::remove(path.c_str());
  return 0;
}
