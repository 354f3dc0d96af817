#include "worker/sparse/key_index.h"

#include <algorithm>

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

}  // namespace tessera::worker::sparse
