// The backend table: what a backend (CPU loops, CUDA kernels) implements, on raw
// pointers and sizes that kernels/ops_*.cc have already validated. One table per
// backend, chosen by Device in BackendFor(); this is the only place that knows which
// backends exist. The dtype dimension (Axpy's x, Cast's pair) is carried as a DType and
// switched on inside the backend, with the supported pairs listed once in
// kernels/dispatch.cc (IsSupportedCast / IsSupportedAxpyInput).
//
// Contract for every entry: arguments are valid (pointers non-null when their count is
// non-zero, sizes > 0, indices in range unless the entry says it checks them); returns OK
// or the failure of the backend itself (CUDA launch or execution error -> kInternal).
// Pointers point into the backend's memory space (host for CPU, device for CUDA) unless
// the parameter says "host".
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "common/status.h"
#include "common/tensor.h"
#include "kernels/math/activation.h"
#include "kernels/math/optimizer.h"

namespace tessera::kernels::internal {

enum class OptimizerOp : uint8_t { kSgd, kMomentum, kAdaGrad, kAdam, kAdamW };

struct Backend {
  const char* name;

  // Memory. copy: dst and src both in this backend's space.
  Status (*fill)(float* x, int64_t n, float value);
  Status (*copy)(void* dst, const void* src, size_t bytes);

  // BLAS-1 and reductions (double accumulation, deterministic).
  Status (*axpy)(float a, const void* x, DType x_dtype, float* y, int64_t n);
  Status (*scale)(float* x, int64_t n, float alpha);
  Status (*add)(const float* a, const float* b, float* out, int64_t n);
  Status (*sum)(const float* x, int64_t n, double* out_host);
  Status (*sum_squares)(const float* x, int64_t n, double* out_host);

  // Fused optimizer; s0/s1 are the slots (null when the op has fewer).
  Status (*optimizer)(OptimizerOp op, const math::OptimizerScalars& s, float* param,
                      const float* grad, float* s0, float* s1, int64_t n);

  // Row-major GEMM, M, N, K > 0; lda/ldb/ldc are the row strides of the stored matrices.
  Status (*gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc);

  // bias may be null. dbias may be null.
  Status (*bias_act_forward)(math::Act act, const float* x, const float* bias, float* y,
                             int64_t rows, int64_t cols);
  Status (*bias_act_backward)(math::Act act, const float* dy, const float* x, const float* bias,
                              float* dpre, float* dbias, int64_t rows, int64_t cols);

  // Checks (these entries DO validate): is every element of idx (i32/i64/u64) in
  // [0, limit)? Sets *ok_host.
  Status (*indices_in_range)(const void* idx, DType idx_dtype, int64_t n, int64_t limit,
                             bool* ok_host);

  // Losses. dlogits may be null. Labels are in range.
  Status (*softmax_xent)(const float* logits, const int32_t* labels, float* dlogits, int64_t n,
                         int64_t c, double* loss_host);
  Status (*argmax)(const float* logits, int64_t n, int64_t c, int32_t* out);
  Status (*count_correct)(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                          int64_t* count_host);
  Status (*sigmoid_bce)(const float* logits, const float* labels, float* dlogits, int64_t n,
                        double* loss_host);

  // Embeddings; idx is i64 or u64, in range.
  Status (*gather)(const float* table, int64_t d, const void* idx, DType idx_dtype, int64_t n,
                   float* out);
  Status (*scatter_add)(const void* idx, DType idx_dtype, const float* grads, int64_t n,
                        int64_t d, float* table);
  // out[j, :] = sum over t in [offsets[j], offsets[j+1]) of grads[order[t], :], added in t
  // order starting from the first row. order and offsets are HOST arrays (u entries and
  // u + 1 entries).
  Status (*segment_sum)(const float* grads, int64_t d, const int64_t* order_host,
                        int64_t order_len, const int64_t* offsets_host, int64_t u, float* out);
  // out[j, :] = +0 + rows[order[t], :] + ... for t in [offsets[j], offsets[j+1]), added in
  // t order; an empty group gives +0. Every array in this backend's space: order [m],
  // offsets [u + 1] (valid: offsets_valid said so), order's entries in range.
  Status (*grouped_row_sum)(const float* rows, int64_t d, const int64_t* order,
                            const int64_t* offsets, int64_t u, float* out);
  // Checks (this entry DOES validate): offsets[0] == 0, offsets[u] == m, non-decreasing.
  Status (*offsets_valid)(const int64_t* offsets, int64_t u, int64_t m, bool* ok_host);
  // DLRM's pairwise dot interaction (kernels/math/interaction.h): x [b, f, d], f >= 2,
  // out / dout [b, f (f - 1) / 2], dx [b, f, d] (overwritten).
  Status (*pairwise_dot)(const float* x, int64_t b, int64_t f, int64_t d, float* out);
  Status (*pairwise_dot_backward)(const float* x, const float* dout, int64_t b, int64_t f,
                                  int64_t d, float* dx);
  // Memory for ScatterAddUnique's result, owned by the returned Buffer.
  Result<Buffer> (*allocate)(size_t bytes);

  Status (*cast)(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);
};

// The CPU table (always built).
const Backend& CpuBackend();
#if TESSERA_HAVE_CUDA
// The CUDA table (kernels/cuda/).
const Backend& CudaBackend();
// Host <-> device copies for CopyTensor. kind: cudaMemcpyKind value.
Status CudaMemcpy(void* dst, const void* src, size_t bytes, int kind);
bool CudaDevicePresent();
#endif

// The backend for `device`, or kFailedPrecondition when this build lacks it.
Result<const Backend*> BackendFor(Device device);

bool IsSupportedCast(DType src, DType dst);
bool IsSupportedAxpyInput(DType x);

}  // namespace tessera::kernels::internal
