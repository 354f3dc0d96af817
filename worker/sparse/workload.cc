#include "worker/sparse/workload.h"

#include <algorithm>

#include "kernels/transfer.h"

namespace tessera::worker::sparse {

namespace {
// Re-views t's buffer as [rows, width], growing it (by half again) only when too small.
Status Fit(Tensor* t, int64_t rows, int64_t width, Device pinned_for) {
  const size_t bytes = static_cast<size_t>(rows * width) * sizeof(float);
  Buffer b = t->buffer();
  if (b.size() < bytes || b.data() == nullptr) {
    const size_t grown = std::max<size_t>(bytes + bytes / 2, 64);
    if (pinned_for == Device::kCPU) {
      b = Buffer::Allocate(grown);
    } else {
      TESSERA_ASSIGN_OR_RETURN(b, kernels::AllocatePinned(pinned_for, grown));
    }
  }
  TESSERA_ASSIGN_OR_RETURN(*t, Tensor::FromBuffer(std::move(b), DType::kF32, {rows, width}));
  return Status::OK();
}
}  // namespace

Status SparseRows::Resize(int64_t width) {
  const int64_t rows = static_cast<int64_t>(keys.size());
  TESSERA_RETURN_IF_ERROR_CTX(Fit(&values, rows, width, pinned_for), "allocating a batch's rows");
  return Fit(&grads, rows, width, pinned_for).WithContext("allocating a batch's row gradients");
}

}  // namespace tessera::worker::sparse
