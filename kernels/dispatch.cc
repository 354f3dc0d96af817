#include "kernels/dispatch.h"

#include <atomic>

#include <string>

#include "kernels/ops.h"

extern "C" void openblas_set_num_threads(int num_threads);  // OpenBLAS (cblas.h declares it too)

namespace tessera::kernels {
namespace internal {

Result<const Backend*> BackendFor(Device device) {
  switch (device) {
    case Device::kCPU:
      return &CpuBackend();
    case Device::kCUDA:
#if TESSERA_HAVE_CUDA
      return &CudaBackend();
#else
      return Status::FailedPrecondition(
          "tensor is on a CUDA device but tessera_kernels was built without CUDA "
          "(TESSERA_CUDA=OFF or no nvcc)");
#endif
  }
  return Status::InvalidArgument("unknown device " +
                                 std::to_string(static_cast<int>(device)));
}

// The explicit list of dtype combinations the backends instantiate.
bool IsSupportedCast(DType src, DType dst) {
  if (src == DType::kF32) return dst == DType::kF32 || dst == DType::kF16 || dst == DType::kBF16;
  return dst == DType::kF32 && (src == DType::kF16 || src == DType::kBF16);
}

bool IsSupportedAxpyInput(DType x) {
  return x == DType::kF32 || x == DType::kF16 || x == DType::kBF16;
}

}  // namespace internal

namespace {
std::atomic<int> g_cpu_threads{1};
}  // namespace

void SetCpuThreads(int threads) {
  threads = threads < 1 ? 1 : threads;
  g_cpu_threads.store(threads);
  // OpenBLAS keeps its own pool, whose idle threads spin in sched_yield: the same
  // budget applies to GEMM.
  openblas_set_num_threads(threads);
}

namespace cpu {
int CpuThreads() { return g_cpu_threads.load(std::memory_order_relaxed); }
}  // namespace cpu

bool BuiltWithCuda() {
#if TESSERA_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool CudaDeviceAvailable() {
#if TESSERA_HAVE_CUDA
  return internal::CudaDevicePresent();
#else
  return false;
#endif
}

}  // namespace tessera::kernels
