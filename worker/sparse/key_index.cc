#include "worker/sparse/key_index.h"

#include <algorithm>

#include "worker/sparse/workload.h"

namespace tessera::worker::sparse {

void KeyIndex::Reset(size_t expected) {
  size_t cap = 16;
  while (cap < expected * 2) cap <<= 1;
  if (slots_.size() < cap) slots_.resize(cap);
  std::fill(slots_.begin(), slots_.end(), -1);
  mask_ = slots_.size() - 1;
  keys_.clear();
}

void KeyIndex::Grow() {
  slots_.assign(std::max<size_t>(16, slots_.size() * 2), -1);
  mask_ = slots_.size() - 1;
  for (size_t r = 0; r < keys_.size(); ++r) {
    size_t i = Mix64(keys_[r]) & mask_;
    while (slots_[i] >= 0) i = (i + 1) & mask_;
    slots_[i] = static_cast<int32_t>(r);
  }
}

namespace {
// Re-views t's buffer as [rows, width], growing it (by half again) only when too small.
void Fit(Tensor* t, int64_t rows, int64_t width) {
  const size_t bytes = static_cast<size_t>(rows * width) * sizeof(float);
  Buffer b = t->buffer();
  if (b.size() < bytes || b.data() == nullptr) b = Buffer::Allocate(std::max<size_t>(bytes + bytes / 2, 64));
  *t = Tensor::FromBuffer(std::move(b), DType::kF32, {rows, width}).value();
}
}  // namespace

void SparseRows::Resize(int64_t width) {
  const int64_t rows = static_cast<int64_t>(keys.size());
  Fit(&values, rows, width);
  Fit(&grads, rows, width);
}

}  // namespace tessera::worker::sparse
