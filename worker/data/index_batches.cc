#include "worker/data/index_batches.h"

#include <algorithm>
#include <numeric>

#include "worker/data/shuffle.h"

namespace tessera::data {

Result<IndexBatches> IndexBatches::Create(int64_t n, const BatchIteratorOptions& options) {
  if (n < 1)
    return Status::InvalidArgument("no examples to iterate over (n = " + std::to_string(n) + ")");
  if (options.batch_size < 1) {
    return Status::InvalidArgument("batch_size " + std::to_string(options.batch_size) +
                                   " must be >= 1");
  }
  return IndexBatches(n, options);
}

void IndexBatches::EnsureOrder() {
  if (order_epoch_ == cursor_.epoch) return;
  if (options_.shuffle) {
    order_ = ShufflePermutation(n_, options_.seed, cursor_.epoch, options_.worker);
  } else {
    order_.resize(static_cast<size_t>(n_));
    std::iota(order_.begin(), order_.end(), int64_t{0});
  }
  order_epoch_ = cursor_.epoch;
}

std::span<const int64_t> IndexBatches::Next(DataCursor* start) {
  EnsureOrder();
  if (start != nullptr) *start = cursor_;
  const int64_t b = cursor_.position;
  const int64_t e = std::min(n_, b + options_.batch_size);
  std::span<const int64_t> out(order_.data() + b, static_cast<size_t>(e - b));
  cursor_.position = e;
  if (cursor_.position >= n_) cursor_ = {cursor_.epoch + 1, 0};
  return out;
}

Status IndexBatches::Seek(const DataCursor& c) {
  if (c.epoch < 0 || c.position < 0 || c.position > n_) {
    return Status::InvalidArgument("cursor {epoch " + std::to_string(c.epoch) + ", position " +
                                   std::to_string(c.position) + "} is outside [0, " +
                                   std::to_string(n_) + "]");
  }
  cursor_ = c.position >= n_ ? DataCursor{c.epoch + 1, 0} : c;
  return Status::OK();
}

}  // namespace tessera::data
