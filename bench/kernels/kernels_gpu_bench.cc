// GPU kernel benchmarks with their baselines on the same GPU in the same run
// (scripts/gpu-check.sh runs it; built with CUDA only):
//   GEMM:  kernels::Gemm on device tensors (Tessera's front end: validation, dispatch,
//          cuBLAS FP32 through its dlopen'ed handle, synchronise) vs cublasSgemm called
//          directly here and synchronised the same way. TFLOP/s = 2 M N K / s.
//   Adam:  kernels::ApplyOptimizer(Adam) on device tensors vs cudaMemcpy device to
//          device. Both as bytes moved per second: Adam reads p, g, m, v and writes p, m, v
//          (28 B/element); a D2D copy of B bytes reads B and writes B (2 B), and copies
//          14 B/element so that both move the same bytes.
// Prints one table and a "gpu_bench:" line per row for the script. Exit code 1 when no
// CUDA device is usable (naming that), 2 on a CUDA error.
// Run: build-cuda/bench/kernels/kernels_gpu_bench [--quick]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/param_spec.h"
#include "kernels/ops.h"
#include "kernels/transfer.h"

namespace tessera::kernels {
namespace {

#define BENCH_CHECK(cond, what)                                  \
  do {                                                           \
    if (!(cond)) {                                               \
      std::fprintf(stderr, "kernels_gpu_bench: %s\n", (what));   \
      std::exit(2);                                              \
    }                                                            \
  } while (0)

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "kernels_gpu_bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(2);
  }
}

// Best of `reps` timed runs of `fn` (each synchronised), in seconds, after one warm-up.
double BestSeconds(int reps, const std::function<void()>& fn) {
  fn();
  BENCH_CHECK(cudaDeviceSynchronize() == cudaSuccess, "warm-up failed");
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    BENCH_CHECK(cudaDeviceSynchronize() == cudaSuccess, "a timed run failed");
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

Tensor DeviceRandom(int64_t n, uint32_t seed) {
  std::vector<float> host(static_cast<size_t>(n));
  uint32_t x = seed * 2654435761u + 1;
  for (float& v : host) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<float>(x >> 8) / static_cast<float>(1 << 24) - 0.5f;
  }
  auto t = AllocateTensor(Device::kCUDA, DType::kF32, {n});
  Check(t.status(), "allocating device memory");
  Check(CopyTensor({host.data(), DType::kF32, {n}, Device::kCPU}, t->view()), "uploading");
  return std::move(t).value();
}

TensorView Mat(const Tensor& t, int64_t r, int64_t c) { return {t.data(), DType::kF32, {r, c}, Device::kCUDA}; }

struct Row {
  std::string what, unit;
  double tessera, baseline;
  std::string baseline_name;
};

}  // namespace
}  // namespace tessera::kernels

int main(int argc, char** argv) {
  using namespace tessera;
  using namespace tessera::kernels;
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  if (!CudaDeviceAvailable()) {
    std::fprintf(stderr, "kernels_gpu_bench: no usable CUDA device (cudaGetDeviceCount failed or returned 0)\n");
    return 1;
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess, "cudaGetDeviceProperties failed");
  std::vector<Row> rows;

  // GEMM, square, FP32 (TF32 off on both sides: cuBLAS's default math mode).
  cublasHandle_t handle = nullptr;
  BENCH_CHECK(cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed");
  for (int64_t n : quick ? std::vector<int64_t>{2048} : std::vector<int64_t>{1024, 4096}) {
    Tensor a = DeviceRandom(n * n, 1), b = DeviceRandom(n * n, 2), c = DeviceRandom(n * n, 3);
    const double flops = 2.0 * static_cast<double>(n) * n * n;
    const double t_tessera = BestSeconds(5, [&] { Check(Gemm(false, false, 1.0f, Mat(a, n, n), Mat(b, n, n), 0.0f, Mat(c, n, n)), "Gemm"); });
    const float one = 1.0f, zero = 0.0f;
    const int ni = static_cast<int>(n);
    // Row-major C = A B is column-major C^T = B^T A^T: swap the operands.
    const double t_cublas = BestSeconds(5, [&] {
      BENCH_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, ni, ni, ni, &one, b.as<float>(), ni, a.as<float>(), ni,
                              &zero, c.as<float>(), ni) == CUBLAS_STATUS_SUCCESS,
                  "cublasSgemm failed");
    });
    rows.push_back({"GEMM f32 " + std::to_string(n) + "^3", "TFLOP/s", flops / t_tessera / 1e12, flops / t_cublas / 1e12,
                    "cublasSgemm"});
  }
  cublasDestroy(handle);

  // Fused Adam vs a device-to-device copy moving the same bytes.
  const int64_t n = quick ? (int64_t{1} << 24) : (int64_t{1} << 26);
  Tensor p = DeviceRandom(n, 4), g = DeviceRandom(n, 5), m = DeviceRandom(n, 6), v = DeviceRandom(n, 7);
  Check(Fill(v.view(), 0.01f), "Fill");
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kAdam;
  cfg.lr = 1e-3f;
  int64_t step = 0;
  const TensorView slots[2] = {m.view(), v.view()};
  const double t_adam = BestSeconds(10, [&] { Check(ApplyOptimizer(cfg, ++step, p.view(), g.view(), slots), "Adam"); });
  const size_t copy_bytes = static_cast<size_t>(n) * 14;
  auto src = AllocateTensor(Device::kCUDA, DType::kF32, {static_cast<int64_t>(copy_bytes / 4)});
  auto dst = AllocateTensor(Device::kCUDA, DType::kF32, {static_cast<int64_t>(copy_bytes / 4)});
  Check(src.status(), "allocating the copy source");
  Check(dst.status(), "allocating the copy destination");
  const double t_copy = BestSeconds(10, [&] {
    BENCH_CHECK(cudaMemcpy(dst->data(), src->data(), copy_bytes, cudaMemcpyDeviceToDevice) == cudaSuccess,
                "cudaMemcpy failed");
  });
  const double moved = 28.0 * static_cast<double>(n);
  rows.push_back({"Adam " + std::to_string(n >> 20) + "M f32", "GB/s", moved / t_adam / 1e9, moved / t_copy / 1e9,
                  "cudaMemcpy D2D"});

  std::printf("GPU: %s (sm_%d%d, %.0f GiB)\n", prop.name, prop.major, prop.minor,
              static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  std::printf("| %-20s | %-8s | %10s | %10s | %-15s | %6s |\n", "kernel", "unit", "tessera", "baseline", "baseline is",
              "ratio");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(22, '-').c_str(), std::string(10, '-').c_str(),
              std::string(12, '-').c_str(), std::string(12, '-').c_str(), std::string(17, '-').c_str(),
              std::string(8, '-').c_str());
  for (const Row& r : rows) {
    std::printf("| %-20s | %-8s | %10.2f | %10.2f | %-15s | %6.2f |\n", r.what.c_str(), r.unit.c_str(), r.tessera,
                r.baseline, r.baseline_name.c_str(), r.tessera / r.baseline);
  }
  for (const Row& r : rows) {
    std::printf("gpu_bench: %s | %s | %.2f | %.2f | %s | %.2f\n", r.what.c_str(), r.unit.c_str(), r.tessera, r.baseline,
                r.baseline_name.c_str(), r.tessera / r.baseline);
  }
  return 0;
}
