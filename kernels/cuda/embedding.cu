// CUDA kernels of the embedding ops: one thread per output element.
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/math/elementwise.h"

namespace tessera::kernels::gpu {

namespace {

struct IndexReader {
  const void* idx;
  bool is_i64;
  __device__ int64_t operator()(int64_t i) const {
    return is_i64 ? static_cast<const int64_t*>(idx)[i]
                  : static_cast<int64_t>(static_cast<const uint64_t*>(idx)[i]);
  }
};

struct GatherOp {
  const float* table;
  IndexReader index;
  int64_t d;
  float* out;
  __device__ void operator()(int64_t e) const {
    const int64_t i = e / d;
    out[e] = table[index(i) * d + (e - i * d)];
  }
};

struct ScatterAddOp {
  IndexReader index;
  const float* grads;
  int64_t d;
  float* table;
  __device__ void operator()(int64_t e) const {
    const int64_t i = e / d;
    atomicAdd(&table[index(i) * d + (e - i * d)], grads[e]);
  }
};

// Same additions, in the same order, as the CPU loop: bit-identical results.
struct SegmentSumOp {
  const float* grads;
  const int64_t* order;
  const int64_t* offsets;
  int64_t d;
  float* out;
  __device__ void operator()(int64_t e) const {
    const int64_t s = e / d;
    const int64_t j = e - s * d;
    int64_t t = offsets[s];
    float acc = grads[order[t] * d + j];
    for (++t; t < offsets[s + 1]; ++t) acc = math::Add(acc, grads[order[t] * d + j]);
    out[e] = acc;
  }
};

// GroupedRowSum: the same additions, in the same order, as the CPU loop, from +0.
struct GroupedRowSumOp {
  const float* rows;
  const int64_t* order;
  const int64_t* offsets;
  int64_t d;
  float* out;
  __device__ void operator()(int64_t e) const {
    const int64_t s = e / d;
    const int64_t j = e - s * d;
    float acc = 0.0f;
    for (int64_t t = offsets[s]; t < offsets[s + 1]; ++t) acc = math::Add(acc, rows[order[t] * d + j]);
    out[e] = acc;
  }
};

// 1 for each broken link of the offsets (a decrease, or a wrong first or last entry).
struct OffsetsFaultTerm {
  const int64_t* offsets;
  int64_t u;
  int64_t m;
  __device__ double operator()(int64_t i) const {
    if (i == u) return (offsets[0] != 0 || offsets[u] != m) ? 1.0 : 0.0;
    return offsets[i] > offsets[i + 1] ? 1.0 : 0.0;
  }
};

}  // namespace

Status GroupedRowSum(const float* rows, int64_t d, const int64_t* order, const int64_t* offsets,
                     int64_t u, float* out) {
  return LaunchElementwise(u * d, GroupedRowSumOp{rows, order, offsets, d, out}, "GroupedRowSum");
}

Status OffsetsValid(const int64_t* offsets, int64_t u, int64_t m, bool* ok_host) {
  double faults = 0;
  TESSERA_RETURN_IF_ERROR(DeviceSum(u + 1, OffsetsFaultTerm{offsets, u, m}, &faults, "GroupedRowSum offsets check"));
  *ok_host = faults == 0;
  return Status::OK();
}

Status Gather(const float* table, int64_t d, const void* idx, DType idx_dtype, int64_t n,
              float* out) {
  return LaunchElementwise(n * d, GatherOp{table, {idx, idx_dtype == DType::kI64}, d, out},
                           "EmbeddingGather");
}

Status ScatterAdd(const void* idx, DType idx_dtype, const float* grads, int64_t n, int64_t d,
                  float* table) {
  return LaunchElementwise(n * d, ScatterAddOp{{idx, idx_dtype == DType::kI64}, grads, d, table},
                           "ScatterAdd");
}

Status SegmentSum(const float* grads, int64_t d, const int64_t* order_host, int64_t order_len,
                  const int64_t* offsets_host, int64_t u, float* out) {
  DeviceScratch plan;
  const size_t order_bytes = sizeof(int64_t) * static_cast<size_t>(order_len);
  const size_t offsets_bytes = sizeof(int64_t) * static_cast<size_t>(u + 1);
  TESSERA_RETURN_IF_ERROR(plan.Allocate(order_bytes + offsets_bytes));
  int64_t* order = plan.as<int64_t>();
  int64_t* offsets = order + order_len;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMemcpy(order, order_host, order_bytes, cudaMemcpyHostToDevice));
  TESSERA_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(offsets, offsets_host, offsets_bytes, cudaMemcpyHostToDevice));
  return LaunchElementwise(u * d, SegmentSumOp{grads, order, offsets, d, out},
                           "ScatterAddUnique");
}

}  // namespace tessera::kernels::gpu
