// Guards for every CUDA runtime call in kernels/cuda/ (cuBLAS: cuda_gemm.cc): a foreign error becomes
// a tessera Status at the line that received it (NCCL's CUDACHECK, returning instead of
// aborting). Also a small RAII device allocation for per-call scratch.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <utility>

#include "common/status.h"

namespace tessera::kernels::gpu {

inline Status CudaError(cudaError_t err, const char* what) {
  return Status::Internal(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) +
                          " (" + cudaGetErrorString(err) + ")");
}

#define TESSERA_CUDA_RETURN_IF_ERROR(expr)                                   \
  do {                                                                       \
    const cudaError_t _tessera_cuda_err = (expr);                            \
    if (_tessera_cuda_err != cudaSuccess) {                                  \
      return ::tessera::kernels::gpu::CudaError(_tessera_cuda_err, #expr);   \
    }                                                                        \
  } while (0)

// Reports a failed launch (bad configuration) and then any fault while the work ran:
// every CUDA op in kernels/ returns only after its work finished (ops.h contract).
inline Status FinishLaunch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return CudaError(err, what);
  err = cudaStreamSynchronize(cudaStreamLegacy);
  if (err != cudaSuccess) return CudaError(err, what);
  return Status::OK();
}

// Device scratch memory freed on scope exit. Not copyable.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  ~DeviceScratch() {
    if (ptr_ != nullptr) cudaFree(ptr_);  // error ignored: nothing useful to do in a destructor
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  Status Allocate(size_t bytes) {
    if (bytes == 0) return Status::OK();
    TESSERA_CUDA_RETURN_IF_ERROR(cudaMalloc(&ptr_, bytes));
    return Status::OK();
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

}  // namespace tessera::kernels::gpu
