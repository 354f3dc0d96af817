// CPU loops for memory, BLAS-1, reductions and casts (per-element math from
// kernels/math/), and the GEMM front over OpenBLAS.
#include <cblas.h>

#include <climits>
#include <cstring>
#include <string>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/cast.h"
#include "kernels/math/elementwise.h"

namespace tessera::kernels::cpu {

Status Fill(float* x, int64_t n, float value) {
  ParallelFor(n, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = value;
  });
  return Status::OK();
}

Status Copy(void* dst, const void* src, size_t bytes) {
  std::memmove(dst, src, bytes);
  return Status::OK();
}

Status Axpy(float a, const void* x_raw, DType x_dtype, float* __restrict y, int64_t n) {
  switch (x_dtype) {
    case DType::kF32: {
      const float* x = static_cast<const float*>(x_raw);
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = math::Axpy(a, x[i], y[i]);
      });
      return Status::OK();
    }
    case DType::kF16: {
      const uint16_t* x = static_cast<const uint16_t*>(x_raw);
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = math::Axpy(a, math::F16ToF32(x[i]), y[i]);
      });
      return Status::OK();
    }
    case DType::kBF16: {
      const uint16_t* x = static_cast<const uint16_t*>(x_raw);
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] = math::Axpy(a, math::BF16ToF32(x[i]), y[i]);
      });
      return Status::OK();
    }
    default:
      return Status::Internal("cpu Axpy: unsupported x dtype reached the backend");
  }
}

Status Scale(float* x, int64_t n, float alpha) {
  ParallelFor(n, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = math::Scale(alpha, x[i]);
  });
  return Status::OK();
}

Status Add(const float* a, const float* b, float* out, int64_t n) {
  ParallelFor(n, [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = math::Add(a[i], b[i]);
  });
  return Status::OK();
}

Status Sum(const float* x, int64_t n, double* out) {
  *out = ReduceSum(n, [=](int64_t i) { return static_cast<double>(x[i]); });
  return Status::OK();
}

Status SumSquares(const float* x, int64_t n, double* out) {
  *out = ReduceSum(n, [=](int64_t i) { return math::SquareTerm(x[i]); });
  return Status::OK();
}

Status Cast(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (src_dtype == DType::kF32 && dst_dtype == DType::kF32) {
    return Copy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
  if (src_dtype == DType::kF32) {
    const float* s = static_cast<const float*>(src);
    uint16_t* d = static_cast<uint16_t*>(dst);
    if (dst_dtype == DType::kF16) {
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = math::F32ToF16(s[i]);
      });
    } else {
      ParallelFor(n, [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = math::F32ToBF16(s[i]);
      });
    }
    return Status::OK();
  }
  const uint16_t* s = static_cast<const uint16_t*>(src);
  float* d = static_cast<float*>(dst);
  if (src_dtype == DType::kF16) {
    ParallelFor(n, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = math::F16ToF32(s[i]);
    });
  } else {
    ParallelFor(n, [=](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = math::BF16ToF32(s[i]);
    });
  }
  return Status::OK();
}

Status Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) {
  for (int64_t v : {m, n, k, lda, ldb, ldc}) {
    if (v > INT_MAX) {
      return Status::InvalidArgument("Gemm: a dimension exceeds the BLAS int range: " +
                                     std::to_string(v));
    }
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
  return Status::OK();
}

Result<Buffer> Allocate(size_t bytes) { return Buffer::Allocate(bytes); }

}  // namespace tessera::kernels::cpu
