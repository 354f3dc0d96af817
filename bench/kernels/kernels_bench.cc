// CPU kernel benchmarks with their baselines in the same run:
//   BM_GemmBlas vs BM_GemmNaive      (counter GFLOPs = 2 M N K / s)
//   BM_ApplyAdam vs BM_Memcpy         (counter bytes_per_second = bytes Adam must move:
//                                      read p, g, m, v and write p, m, v = 28 B/element;
//                                      memcpy of the same byte count is the bandwidth bound)
//   BM_CastF32ToBF16                  (6 B/element)
// Run: build/bench/kernels/kernels_bench --benchmark_min_time=0.2s
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace tessera::kernels {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

TensorView View(std::vector<float>& v, Shape s) { return {v.data(), DType::kF32, std::move(s), Device::kCPU}; }

void BM_GemmBlas(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto a = Random(n * n, 1), b = Random(n * n, 2), c = std::vector<float>(n * n);
  for (auto _ : state) {
    Status s = Gemm(false, false, 1.0f, View(a, {n, n}), View(b, {n, n}), 0.0f, View(c, {n, n}));
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_GemmNaive(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto a = Random(n * n, 1), b = Random(n * n, 2), c = std::vector<float>(n * n);
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float s = 0;
        for (int64_t k = 0; k < n; ++k) s += a[i * n + k] * b[k * n + j];
        c[i * n + j] = s;
      }
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_ApplyAdam(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto p = Random(n, 1), g = Random(n, 2), m = std::vector<float>(n), v = std::vector<float>(n);
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kAdam;
  std::vector<TensorView> slots = {View(m, {n}), View(v, {n})};
  int64_t step = 0;
  for (auto _ : state) {
    Status s = ApplyOptimizer(cfg, ++step, View(p, {n}), View(g, {n}), slots);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 28);
}

void BM_Memcpy(benchmark::State& state) {  // same bytes moved as BM_ApplyAdam (read 16 + write 12 B)
  const int64_t n = state.range(0);
  std::vector<char> src(static_cast<size_t>(n) * 14), dst(static_cast<size_t>(n) * 14);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), dst.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 28);  // memcpy reads + writes 14 B/element
}

void BM_CastF32ToBF16(benchmark::State& state) {
  const int64_t n = state.range(0);
  auto x = Random(n, 3);
  std::vector<uint16_t> y(static_cast<size_t>(n));
  for (auto _ : state) {
    Status s = Cast(View(x, {n}), TensorView{y.data(), DType::kBF16, {n}, Device::kCPU});
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * n * 6);
}

BENCHMARK(BM_GemmBlas)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GemmNaive)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyAdam)->Arg(1 << 16)->Arg(1 << 22)->UseRealTime();
BENCHMARK(BM_Memcpy)->Arg(1 << 16)->Arg(1 << 22)->UseRealTime();
BENCHMARK(BM_CastF32ToBF16)->Arg(1 << 22)->UseRealTime();

}  // namespace
}  // namespace tessera::kernels

BENCHMARK_MAIN();
