// The CPU backend's entries (see kernels/dispatch.h for the contract of each); the
// table that collects them is in cpu_backend.cc.
#pragma once

#include "kernels/dispatch.h"

namespace tessera::kernels::cpu {

using internal::OptimizerOp;

Status Fill(float* x, int64_t n, float value);
Status Copy(void* dst, const void* src, size_t bytes);
Status Axpy(float a, const void* x, DType x_dtype, float* y, int64_t n);
Status Scale(float* x, int64_t n, float alpha);
Status Add(const float* a, const float* b, float* out, int64_t n);
Status Sum(const float* x, int64_t n, double* out);
Status SumSquares(const float* x, int64_t n, double* out);
Status Cast(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n);
Status Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc);

Status Optimizer(OptimizerOp op, const math::OptimizerScalars& s, float* param,
                 const float* grad, float* s0, float* s1, int64_t n);
// The same update on `nrows` rows of one sparse table, in host memory (the servers'
// stores): row r is rows[r], `width` values then its slots (slot k at rows[r] + (k + 1) *
// width), its gradient grad[r * width, +width). Adam / AdamW take their per-row bias
// corrections from step_size[r] and sqrt_bc2[r] (s's fields are ignored); the other kinds
// pass nullptr. One call per push instead of one per row (the per-row indirect call,
// switch and ParallelFor set-up cost as much as a 16-wide row's math); rows wider than
// kParallelGrain still run through Optimizer, split over threads. Bitwise each row's
// Optimizer result: the same per-element math/ functions, nothing reduced.
Status OptimizerRows(OptimizerOp op, const math::OptimizerScalars& s, float* const* rows, const float* grad,
                     int64_t width, int64_t nrows, const float* step_size, const float* sqrt_bc2);

Status BiasActForward(math::Act act, const float* x, const float* bias, float* y, int64_t rows,
                      int64_t cols);
Status BiasActBackward(math::Act act, const float* dy, const float* x, const float* bias,
                       float* dpre, float* dbias, int64_t rows, int64_t cols);
Status IndicesInRange(const void* idx, DType idx_dtype, int64_t n, int64_t limit, bool* ok);
Status SoftmaxXent(const float* logits, const int32_t* labels, float* dlogits, int64_t n,
                   int64_t c, double* loss);
Status ArgMax(const float* logits, int64_t n, int64_t c, int32_t* out);
Status CountCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                    int64_t* count);
Status SigmoidBce(const float* logits, const float* labels, float* dlogits, int64_t n,
                  double* loss);

Status Gather(const float* table, int64_t d, const void* idx, DType idx_dtype, int64_t n,
              float* out);
Status ScatterAdd(const void* idx, DType idx_dtype, const float* grads, int64_t n, int64_t d,
                  float* table);
Status SegmentSum(const float* grads, int64_t d, const int64_t* order, int64_t order_len,
                  const int64_t* offsets, int64_t u, float* out);
Status GroupedRowSum(const float* rows, int64_t d, const int64_t* order, const int64_t* offsets,
                     int64_t u, float* out);
Status OffsetsValid(const int64_t* offsets, int64_t u, int64_t m, bool* ok_host);
Result<Buffer> Allocate(size_t bytes);

Status PairwiseDot(const float* x, int64_t b, int64_t f, int64_t d, float* out);
Status PairwiseDotBackward(const float* x, const float* dout, int64_t b, int64_t f, int64_t d,
                           float* dx);

}  // namespace tessera::kernels::cpu
