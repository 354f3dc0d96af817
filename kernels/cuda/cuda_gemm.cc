// GEMM front on cuBLAS. cuBLAS is column-major: a row-major C[M,N] is a column-major
// C^T[N,M], and C^T = op(B)^T op(A)^T, so we call sgemm with the operands swapped and
// the row strides as leading dimensions.
//
// cuBLAS is loaded with dlopen on the first CUDA GEMM instead of being linked: linking
// libcublas (and the 0.5 GB libcublasLt it pulls in) costs every process that links
// tessera_kernels ~0.15 s of start-up, and most of them (servers, CPU workers, tests)
// never run a CUDA GEMM. A missing library is reported as kFailedPrecondition.
#include <cublas_v2.h>
#include <dlfcn.h>

#include <climits>
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels::gpu {

namespace {

struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

#define TESSERA_STR_INNER(x) #x
#define TESSERA_STR(x) TESSERA_STR_INNER(x)

// Loaded once per process; the handle is never dlclose'd (cuBLAS handles outlive us).
Result<const CublasApi*> Cublas() {
  static const Result<const CublasApi*> loaded = []() -> Result<const CublasApi*> {
    const char* names[] = {"libcublas.so." TESSERA_STR(CUBLAS_VER_MAJOR), "libcublas.so"};
    void* lib = nullptr;
    std::string errors;
    for (const char* name : names) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) break;
      const char* e = dlerror();
      errors += std::string(name) + ": " + (e != nullptr ? e : "?") + "; ";
    }
    if (lib == nullptr) return Status::FailedPrecondition("cannot load cuBLAS (" + errors + ")");
    static CublasApi api;
    api.create = reinterpret_cast<decltype(api.create)>(dlsym(lib, "cublasCreate_v2"));
    api.set_math_mode = reinterpret_cast<decltype(api.set_math_mode)>(dlsym(lib, "cublasSetMathMode"));
    api.set_stream = reinterpret_cast<decltype(api.set_stream)>(dlsym(lib, "cublasSetStream_v2"));
    api.sgemm = reinterpret_cast<decltype(api.sgemm)>(dlsym(lib, "cublasSgemm_v2"));
    api.status_string =
        reinterpret_cast<decltype(api.status_string)>(dlsym(lib, "cublasGetStatusString"));
    if (!api.create || !api.set_math_mode || !api.set_stream || !api.sgemm || !api.status_string) {
      return Status::FailedPrecondition("cuBLAS library lacks an expected symbol");
    }
    return &api;
  }();
  return loaded;
}

Status CublasError(const CublasApi& api, cublasStatus_t st, const char* what) {
  return Status::Internal(std::string("cuBLAS error in ") + what + ": " + api.status_string(st));
}

#define TESSERA_CUBLAS_RETURN_IF_ERROR(api, expr)                                    \
  do {                                                                               \
    const cublasStatus_t _tessera_cublas_st = (expr);                                \
    if (_tessera_cublas_st != CUBLAS_STATUS_SUCCESS) {                               \
      return CublasError(api, _tessera_cublas_st, #expr);                            \
    }                                                                                \
  } while (0)

// One handle per (thread, device), created on first use. Handles are deliberately never
// destroyed: destroying them from thread-exit/static destructors can run after the CUDA
// runtime has been torn down at process exit.
Result<cublasHandle_t> HandleForCurrentDevice(const CublasApi& api) {
  constexpr int kMaxDevices = 64;
  thread_local cublasHandle_t handles[kMaxDevices] = {};
  int device = 0;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) {
    return Status::Internal("cuBLAS: device index " + std::to_string(device) + " out of range");
  }
  if (handles[device] == nullptr) {
    cublasHandle_t h = nullptr;
    TESSERA_CUBLAS_RETURN_IF_ERROR(api, api.create(&h));
    // FP32 math as documented in ops.h: no TF32 tensor-op shortcut.
    TESSERA_CUBLAS_RETURN_IF_ERROR(api, api.set_math_mode(h, CUBLAS_DEFAULT_MATH));
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
  TESSERA_ASSIGN_OR_RETURN(const CublasApi* api, Cublas());
  TESSERA_ASSIGN_OR_RETURN(cublasHandle_t handle, HandleForCurrentDevice(*api));
  TESSERA_CUBLAS_RETURN_IF_ERROR(*api, api->set_stream(handle, cudaStreamLegacy));
  TESSERA_CUBLAS_RETURN_IF_ERROR(
      *api, api->sgemm(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                       trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n),
                       static_cast<int>(m), static_cast<int>(k), &alpha, b,
                       static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c,
                       static_cast<int>(ldc)));
  TESSERA_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(cudaStreamLegacy));
  return Status::OK();
}

}  // namespace tessera::kernels::gpu
