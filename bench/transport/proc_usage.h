// What the two-process transport prototypes (bench_handoff, bench_mac_pipeline) measure
// besides time: this process's CPU and context switches, all its threads included
// (ZeroMQ's I/O threads too), and the median of per-round figures. Header-only: both
// are single-file benchmarks.
#pragma once

#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace tessera::bench {

// User + system CPU µs and context switches (voluntary + involuntary) so far.
struct Usage {
  double cpu_us = 0, switches = 0;
};

inline Usage Now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return {static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
              static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec),
          static_cast<double>(u.ru_nvcsw + u.ru_nivcsw)};
}

// (b - a) / iters, per field.
inline Usage PerIter(const Usage& a, const Usage& b, int iters) {
  return {(b.cpu_us - a.cpu_us) / iters, (b.switches - a.switches) / iters};
}

// `count` zeroed Usage cells shared with the processes this one forks afterwards (each
// side writes its own cells; the parent reads them all after waiting for the child).
// nullptr when the mapping fails. Never unmapped: the benchmarks map one per run.
inline Usage* MapSharedUsage(size_t count) {
  void* p = mmap(nullptr, count * sizeof(Usage), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<Usage*>(p);
}

// The upper median (v is taken by value: it is sorted). REQUIRES: !v.empty().
inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace tessera::bench
