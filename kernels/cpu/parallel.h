// The CPU backend's only parallelism: static splits of an index range over OpenMP
// threads, used only above a grain where a fork pays for itself (the target machines
// have few cores and other processes on them). Reductions split into fixed-size chunks
// whose partial sums are added in chunk order, so results do not depend on the thread
// count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#define TESSERA_OMP(directive) _Pragma(#directive)
#else
#define TESSERA_OMP(directive)
#endif

namespace tessera::kernels::cpu {

// Below this many elements a loop runs on the calling thread.
inline constexpr int64_t kParallelGrain = int64_t{1} << 16;

// Threads a parallel loop may use (kernels::SetCpuThreads). 1 runs every loop on the
// calling thread and never enters the OpenMP runtime, whose idle threads spin after each
// region: on a 2-core machine shared with ZeroMQ's I/O thread and other ranks that spin
// cost a parameter server 70% of its time (docs/benchmarks.md).
int CpuThreads();

// body(begin, end) over [0, n) in contiguous blocks of >= kParallelGrain elements.
template <typename Body>
void ParallelFor(int64_t n, Body&& body, int64_t grain = kParallelGrain) {
  const int threads = CpuThreads();
  if (n <= grain || threads <= 1) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  const int64_t blocks = (n + grain - 1) / grain;
  TESSERA_OMP(omp parallel for schedule(static) num_threads(threads))
  for (int64_t b = 0; b < blocks; ++b) {
    body(b * grain, std::min(n, (b + 1) * grain));
  }
}

// sum_{i<n} term(i) in double; deterministic for a given n (chunk size fixed, partials
// added in order, eight interleaved accumulators per chunk).
template <typename Term>
double ReduceSum(int64_t n, Term&& term) {
  constexpr int64_t kChunk = kParallelGrain;
  auto chunk_sum = [&](int64_t begin, int64_t end) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (int j = 0; j < 8; ++j) acc[j] += term(i + j);
    }
    for (; i < end; ++i) acc[0] += term(i);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  };
  if (n <= kChunk) return chunk_sum(0, n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  const int threads = CpuThreads();
  TESSERA_OMP(omp parallel for schedule(static) num_threads(threads) if (threads > 1))
  for (int64_t c = 0; c < chunks; ++c) {
    partial[c] = chunk_sum(c * kChunk, std::min(n, (c + 1) * kChunk));
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace tessera::kernels::cpu
