// BatchIterator: an endless stream of (features, labels) mini-batches over one worker's
// Dataset, in a per-epoch order fixed by (seed, epoch, worker), with a cursor that can be
// saved in a checkpoint and restored exactly.
//
// Order: epoch e visits the local examples in ShufflePermutation(n, seed, e, worker)
// (identity when shuffle is off), in consecutive slices of batch_size. The last slice of
// an epoch is shorter when n is not a multiple of batch_size, or skipped with drop_last.
// After the last batch of epoch e the cursor moves to {e + 1, 0}. The stream never ends:
// the training loop decides how many steps to run.
//
// Cursor: {epoch, position} names the next example of the stream: position indexes the
// epoch's permutation. Seek(c) followed by Next() yields the same batches, bit for bit, as
// the iterator that reported c via cursor() did after that point.
//
// Thread safety: one thread at a time. Batch views stay valid until the next call to
// Next() or Seek(), or the iterator's destruction; the Dataset must outlive the iterator.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "worker/data/dataset.h"

namespace tessera::data {

struct DataCursor {
  int64_t epoch = 0;
  int64_t position = 0;
  friend bool operator==(const DataCursor&, const DataCursor&) = default;
};

struct BatchIteratorOptions {
  // Examples per batch. Default: 64.
  int64_t batch_size = 64;
  // Reshuffle every epoch; off visits examples in file order. Default: true.
  bool shuffle = true;
  // Seed of the shuffling stream (the job's --seed). Default: 0.
  uint64_t seed = 0;
  // The worker's rank: part of the shuffle key, so shards are shuffled independently.
  // Default: 0.
  int64_t worker = 0;
  // Skip an epoch's final short batch (every batch then has batch_size rows). Default: false.
  bool drop_last = false;
};

struct Batch {
  TensorView features;  // f32 [size, dim]
  TensorView labels;    // i32 [size]
  int64_t size = 0;
  DataCursor start;  // cursor at this batch's first example
};

class BatchIterator {
 public:
  // Returns InvalidArgument when batch_size < 1, the dataset is empty, or drop_last leaves
  // no batch at all (batch_size > num_examples). `dataset` is borrowed: it must outlive the
  // iterator (and not move).
  static Result<BatchIterator> Create(const Dataset* dataset, const BatchIteratorOptions& options);

  // The next batch; advances the cursor (rolling into the next epoch after the last batch).
  Result<Batch> Next();

  // The position of the next example Next() will return (normalised: never past the end
  // of an epoch).
  DataCursor cursor() const { return cursor_; }

  // Moves to `cursor`. Returns InvalidArgument when epoch < 0 or position is outside
  // [0, num_examples]; a position at or past the epoch's last batch moves to {epoch+1, 0}.
  Status Seek(const DataCursor& cursor);

  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return options_.batch_size; }
  const Dataset& dataset() const { return *dataset_; }

 private:
  BatchIterator(const Dataset* dataset, const BatchIteratorOptions& options);
  // Rolls the cursor to the next epoch if no batch is left in the current one.
  void Normalise();
  // Makes order_ the permutation of cursor_.epoch.
  void EnsureOrder();

  // Borrowed; outlives *this (see Create).
  const Dataset* dataset_;
  BatchIteratorOptions options_;
  DataCursor cursor_;
  std::vector<int64_t> order_;  // permutation of order_epoch_ (empty when !shuffle)
  int64_t order_epoch_ = -1;
  std::vector<float> feature_buf_;  // gathered rows of the current batch
  std::vector<int32_t> label_buf_;
};

}  // namespace tessera::data
