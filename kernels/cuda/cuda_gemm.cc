// GEMM front on cuBLAS. cuBLAS is column-major: a row-major C[M,N] is a column-major
// C^T[N,M], and C^T = op(B)^T op(A)^T, so we call sgemm with the operands swapped and
// the row strides as leading dimensions.
#include <climits>
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels::gpu {

namespace {

// One handle per (thread, device), created on first use. Handles are deliberately never
// destroyed: destroying them from thread-exit/static destructors can run after the CUDA
// runtime has been torn down at process exit.
Result<cublasHandle_t> HandleForCurrentDevice() {
  constexpr int kMaxDevices = 64;
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  int device = 0;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) {
    return Status::Internal("cuBLAS: device index " + std::to_string(device) + " out of range");
  }
  if (handles[device] == nullptr) {
    cublasHandle_t h = nullptr;
    TESSERA_CUBLAS_RETURN_IF_ERROR(cublasCreate(&h));
    // FP32 math as documented in ops.h: no TF32 tensor-op shortcut.
    TESSERA_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    handles[device] = h;
  }
  return handles[device];
}

}  // namespace

Status Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) {
  for (int64_t v : {m, n, k, lda, ldb, ldc}) {
    if (v > INT_MAX) {
      return Status::InvalidArgument("Gemm: a dimension exceeds the cuBLAS int range: " +
                                     std::to_string(v));
    }
  }
  TESSERA_ASSIGN_OR_RETURN(cublasHandle_t handle, HandleForCurrentDevice());
  TESSERA_CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle, cudaStreamLegacy));
  TESSERA_CUBLAS_RETURN_IF_ERROR(cublasSgemm(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
      static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc)));
  TESSERA_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(cudaStreamLegacy));
  return Status::OK();
}

}  // namespace tessera::kernels::gpu
