// IndexBatches: an endless stream of mini-batches of local example indices over n
// examples, with BatchIterator's order and cursor rules (batch_iterator.h) for data that
// does not fit a dense [N, dim] tensor (the sparse models' LIBSVM rows, word2vec's
// center positions). Epoch e visits ShufflePermutation(n, seed, e, worker) (identity
// without shuffle) in slices of batch_size; the last slice may be short.
//
// Thread safety: one thread at a time; the returned span is valid until the next call.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "worker/data/batch_iterator.h"

namespace tessera::data {

class IndexBatches {
 public:
  // InvalidArgument when n < 1 or batch_size < 1.
  static Result<IndexBatches> Create(int64_t n, const BatchIteratorOptions& options);

  // The next batch's indices; *start (optional) receives the cursor at its first element.
  std::span<const int64_t> Next(DataCursor* start = nullptr);
  DataCursor cursor() const { return cursor_; }
  // Same contract as BatchIterator::Seek.
  Status Seek(const DataCursor& cursor);
  int64_t batches_per_epoch() const { return (n_ + options_.batch_size - 1) / options_.batch_size; }

 private:
  IndexBatches(int64_t n, const BatchIteratorOptions& options) : n_(n), options_(options) {}
  void EnsureOrder();

  int64_t n_;
  BatchIteratorOptions options_;
  DataCursor cursor_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
};

}  // namespace tessera::data
