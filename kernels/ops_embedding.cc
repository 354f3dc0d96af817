// Embedding gather, scatter-add and duplicate-merging scatter: validation, the host-side
// sort that makes ScatterAddUnique deterministic, then the backend table.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/validate.h"

namespace tessera::kernels {

using internal::Backend;
using internal::BackendFor;
using internal::CheckMatrix;
using internal::CheckSameDevice;
using internal::CheckView;
using internal::Describe;
using internal::Invalid;

namespace {

constexpr auto kF32 = DType::kF32;

// table [V, D], indices (i64/u64, any shape) N, rows [N, D] named rows_name.
Status CheckTableIndicesRows(std::string_view op, const TensorView& table,
                             const TensorView& indices, const TensorView& rows,
                             std::string_view rows_name) {
  TESSERA_RETURN_IF_ERROR(CheckMatrix(op, "table", table, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(op, "indices", indices, {DType::kI64, DType::kU64}));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(op, rows_name, rows, {kF32}));
  if (rows.shape[0] != indices.numel() || rows.shape[1] != table.shape[1]) {
    return Invalid(op, std::string(rows_name) + " must be [" + std::to_string(indices.numel()) +
                           ", " + std::to_string(table.shape[1]) + "] (indices " +
                           Describe(indices) + ", table " + Describe(table) + "), got " +
                           Describe(rows));
  }
  return Status::OK();
}

Status CheckIndicesInRange(std::string_view op, const Backend* be, const TensorView& indices,
                           int64_t limit) {
  bool ok = false;
  TESSERA_RETURN_IF_ERROR(
      be->indices_in_range(indices.data, indices.dtype, indices.numel(), limit, &ok));
  if (!ok) return Invalid(op, "an index is outside [0, " + std::to_string(limit) + ")");
  return Status::OK();
}

}  // namespace

Status EmbeddingGather(TensorView table, TensorView indices, TensorView out) {
  constexpr std::string_view kOp = "EmbeddingGather";
  TESSERA_RETURN_IF_ERROR(CheckTableIndicesRows(kOp, table, indices, out, "out"));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&table, &indices, &out}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (out.numel() == 0) return Status::OK();
  TESSERA_RETURN_IF_ERROR(CheckIndicesInRange(kOp, be, indices, table.shape[0]));
  return be->gather(table.as<float>(), table.shape[1], indices.data, indices.dtype,
                    indices.numel(), out.as<float>());
}

Status ScatterAdd(TensorView indices, TensorView grads, TensorView table) {
  constexpr std::string_view kOp = "ScatterAdd";
  TESSERA_RETURN_IF_ERROR(CheckTableIndicesRows(kOp, table, indices, grads, "grads"));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&table, &indices, &grads}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (grads.numel() == 0) return Status::OK();
  TESSERA_RETURN_IF_ERROR(CheckIndicesInRange(kOp, be, indices, table.shape[0]));
  return be->scatter_add(indices.data, indices.dtype, grads.as<float>(), indices.numel(),
                         table.shape[1], table.as<float>());
}

Status GroupedRowSum(TensorView rows, TensorView order, TensorView offsets, TensorView out) {
  constexpr std::string_view kOp = "GroupedRowSum";
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "rows", rows, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "order", order, {DType::kI64}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "offsets", offsets, {DType::kI64}));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "out", out, {kF32}));
  const int64_t u = out.shape[0];
  if (offsets.numel() != u + 1) {
    return Invalid(kOp, "offsets " + Describe(offsets) + " must have one entry per out row plus one (" +
                            std::to_string(u + 1) + ")");
  }
  if (out.shape[1] != rows.shape[1]) {
    return Invalid(kOp, "out " + Describe(out) + " and rows " + Describe(rows) + " must have the same width");
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&rows, &order, &offsets, &out}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (out.numel() == 0 && order.numel() == 0) return Status::OK();
  bool ok = false;
  TESSERA_RETURN_IF_ERROR(be->offsets_valid(offsets.as<int64_t>(), u, order.numel(), &ok));
  if (!ok) {
    return Invalid(kOp, "offsets must start at 0, end at order's length (" + std::to_string(order.numel()) +
                            ") and never decrease");
  }
  if (order.numel() > 0) TESSERA_RETURN_IF_ERROR(CheckIndicesInRange(kOp, be, order, rows.shape[0]));
  if (out.numel() == 0) return Status::OK();
  return be->grouped_row_sum(rows.as<float>(), rows.shape[1], order.as<int64_t>(), offsets.as<int64_t>(), u,
                             out.as<float>());
}

Status ScatterAddUnique(TensorView keys, TensorView grads, std::vector<uint64_t>* unique_keys,
                        Tensor* summed) {
  constexpr std::string_view kOp = "ScatterAddUnique";
  if (unique_keys == nullptr || summed == nullptr) {
    return Invalid(kOp, "unique_keys and summed must be non-null");
  }
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "keys", keys, {DType::kI64, DType::kU64}));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "grads", grads, {kF32}));
  const int64_t n = keys.numel();
  const int64_t d = grads.shape[1];
  if (grads.shape[0] != n) {
    return Invalid(kOp, "grads " + Describe(grads) + " must have one row per key (" +
                            std::to_string(n) + ")");
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&keys, &grads}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));

  // The plan (sort, unique, segments) is computed on the host for both backends: it is
  // what makes the result deterministic and identical across backends.
  std::vector<uint64_t> host_keys(static_cast<size_t>(n));
  if (n > 0) {
    TESSERA_RETURN_IF_ERROR(CopyTensor(keys, TensorView{host_keys.data(), keys.dtype, {n},
                                                        Device::kCPU}));
  }
  if (keys.dtype == DType::kI64) {
    for (int64_t i = 0; i < n; ++i) {
      if (static_cast<int64_t>(host_keys[i]) < 0) {
        return Invalid(kOp, "keys[" + std::to_string(i) + "] is negative");
      }
    }
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return host_keys[a] < host_keys[b]; });
  std::vector<uint64_t> uniq;
  std::vector<int64_t> offsets;
  for (int64_t t = 0; t < n; ++t) {
    const uint64_t k = host_keys[order[t]];
    if (uniq.empty() || uniq.back() != k) {
      uniq.push_back(k);
      offsets.push_back(t);
    }
  }
  offsets.push_back(n);
  const int64_t u = static_cast<int64_t>(uniq.size());

  const size_t bytes = static_cast<size_t>(u) * static_cast<size_t>(d) * sizeof(float);
  TESSERA_ASSIGN_OR_RETURN(Buffer buffer, be->allocate(bytes));
  TESSERA_ASSIGN_OR_RETURN(Tensor result, Tensor::FromBuffer(std::move(buffer), kF32, {u, d}));
  if (u > 0 && d > 0) {
    TESSERA_RETURN_IF_ERROR(be->segment_sum(grads.as<float>(), d, order.data(), n,
                                            offsets.data(), u, result.as<float>()));
  }
  *unique_keys = std::move(uniq);
  *summed = std::move(result);
  return Status::OK();
}

}  // namespace tessera::kernels
