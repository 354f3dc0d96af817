// CPU loops of the embedding ops. Gather and the segment sums split rows over threads;
// ScatterAdd runs in input order on one thread (duplicates make rows dependent), which
// is what makes it deterministic.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/parallel.h"
#include "kernels/math/elementwise.h"

namespace tessera::kernels::cpu {

namespace {

inline int64_t IndexAt(const void* idx, DType t, int64_t i) {
  return t == DType::kI64 ? static_cast<const int64_t*>(idx)[i]
                          : static_cast<int64_t>(static_cast<const uint64_t*>(idx)[i]);
}

int64_t RowGrain(int64_t d) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(d, 1)); }

}  // namespace

Status Gather(const float* table, int64_t d, const void* idx, DType idx_dtype, int64_t n,
              float* out) {
  ParallelFor(
      n,
      [=](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          std::memcpy(out + i * d, table + IndexAt(idx, idx_dtype, i) * d,
                      static_cast<size_t>(d) * sizeof(float));
        }
      },
      RowGrain(d));
  return Status::OK();
}

Status ScatterAdd(const void* idx, DType idx_dtype, const float* grads, int64_t n, int64_t d,
                  float* table) {
  for (int64_t i = 0; i < n; ++i) {
    float* __restrict row = table + IndexAt(idx, idx_dtype, i) * d;
    const float* __restrict g = grads + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] = math::Add(row[j], g[j]);
  }
  return Status::OK();
}

Status SegmentSum(const float* grads, int64_t d, const int64_t* order, int64_t order_len,
                  const int64_t* offsets, int64_t u, float* out) {
  ParallelFor(
      u,
      [=](int64_t b, int64_t e) {
        for (int64_t s = b; s < e; ++s) {
          float* __restrict dst = out + s * d;
          std::memcpy(dst, grads + order[offsets[s]] * d, static_cast<size_t>(d) * sizeof(float));
          for (int64_t t = offsets[s] + 1; t < offsets[s + 1]; ++t) {
            const float* __restrict g = grads + order[t] * d;
            for (int64_t j = 0; j < d; ++j) dst[j] = math::Add(dst[j], g[j]);
          }
        }
      },
      RowGrain(d));
  return Status::OK();
}

Status GroupedRowSum(const float* rows, int64_t d, const int64_t* order, const int64_t* offsets,
                     int64_t u, float* out) {
  ParallelFor(
      u,
      [=](int64_t b, int64_t e) {
        for (int64_t s = b; s < e; ++s) {
          float* __restrict dst = out + s * d;
          std::fill(dst, dst + d, 0.0f);
          for (int64_t t = offsets[s]; t < offsets[s + 1]; ++t) {
            const float* __restrict g = rows + order[t] * d;
            for (int64_t j = 0; j < d; ++j) dst[j] = math::Add(dst[j], g[j]);
          }
        }
      },
      RowGrain(d));
  return Status::OK();
}

Status OffsetsValid(const int64_t* offsets, int64_t u, int64_t m, bool* ok_host) {
  bool ok = offsets[0] == 0 && offsets[u] == m;
  for (int64_t s = 0; ok && s < u; ++s) ok = offsets[s] <= offsets[s + 1];
  *ok_host = ok;
  return Status::OK();
}

}  // namespace tessera::kernels::cpu
