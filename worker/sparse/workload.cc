#include "worker/sparse/workload.h"

#include <algorithm>

namespace tessera::worker::sparse {

namespace {
// Re-views t's buffer as [rows, width], growing it (by half again) only when too small.
void Fit(Tensor* t, int64_t rows, int64_t width) {
  const size_t bytes = static_cast<size_t>(rows * width) * sizeof(float);
  Buffer b = t->buffer();
  if (b.size() < bytes || b.data() == nullptr)
    b = Buffer::Allocate(std::max<size_t>(bytes + bytes / 2, 64));
  *t = Tensor::FromBuffer(std::move(b), DType::kF32, {rows, width}).value();
}
}  // namespace

void SparseRows::Resize(int64_t width) {
  const int64_t rows = static_cast<int64_t>(keys.size());
  Fit(&values, rows, width);
  Fit(&grads, rows, width);
}

}  // namespace tessera::worker::sparse
