#include "worker/data/batch_iterator.h"

#include <algorithm>
#include <cstring>

#include "worker/data/shuffle.h"

namespace tessera::data {

BatchIterator::BatchIterator(const Dataset* dataset, const BatchIteratorOptions& options)
    : dataset_(dataset), options_(options) {}

Result<BatchIterator> BatchIterator::Create(const Dataset* dataset,
                                            const BatchIteratorOptions& options) {
  if (dataset == nullptr || dataset->num_examples < 1) {
    return Status::InvalidArgument("BatchIterator needs a non-empty dataset");
  }
  if (options.batch_size < 1) {
    return Status::InvalidArgument("batch_size must be >= 1, got " +
                                   std::to_string(options.batch_size));
  }
  if (options.drop_last && options.batch_size > dataset->num_examples) {
    return Status::InvalidArgument("batch_size " + std::to_string(options.batch_size) +
                                   " exceeds the " + std::to_string(dataset->num_examples) +
                                   " local examples and drop_last is set: no batch would remain");
  }
  BatchIterator it(dataset, options);
  if (options.shuffle) {
    it.feature_buf_.resize(static_cast<size_t>(options.batch_size * dataset->dim));
    it.label_buf_.resize(static_cast<size_t>(options.batch_size));
  }
  return it;
}

int64_t BatchIterator::batches_per_epoch() const {
  const int64_t n = dataset_->num_examples;
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void BatchIterator::Normalise() {
  const int64_t remaining = dataset_->num_examples - cursor_.position;
  if (remaining <= 0 || (options_.drop_last && remaining < options_.batch_size)) {
    ++cursor_.epoch;
    cursor_.position = 0;
  }
}

void BatchIterator::EnsureOrder() {
  if (!options_.shuffle || order_epoch_ == cursor_.epoch) return;
  order_ =
      ShufflePermutation(dataset_->num_examples, options_.seed, cursor_.epoch, options_.worker);
  order_epoch_ = cursor_.epoch;
}

Status BatchIterator::Seek(const DataCursor& cursor) {
  if (cursor.epoch < 0 || cursor.position < 0 || cursor.position > dataset_->num_examples) {
    return Status::InvalidArgument("cursor {epoch " + std::to_string(cursor.epoch) + ", position " +
                                   std::to_string(cursor.position) + "} is outside a dataset of " +
                                   std::to_string(dataset_->num_examples) + " examples");
  }
  cursor_ = cursor;
  Normalise();
  return Status::OK();
}

Result<Batch> BatchIterator::Next() {
  EnsureOrder();
  const int64_t size = std::min(options_.batch_size, dataset_->num_examples - cursor_.position);
  Batch batch;
  batch.size = size;
  batch.start = cursor_;
  const int64_t dim = dataset_->dim;
  if (!options_.shuffle) {
    batch.features = dataset_->FeatureRows(cursor_.position, cursor_.position + size);
    batch.labels = dataset_->LabelRows(cursor_.position, cursor_.position + size);
  } else {
    const float* src = dataset_->features.as<float>();
    const int32_t* lab = dataset_->labels.as<int32_t>();
    for (int64_t i = 0; i < size; ++i) {
      const int64_t row = order_[static_cast<size_t>(cursor_.position + i)];
      std::memcpy(feature_buf_.data() + i * dim, src + row * dim,
                  static_cast<size_t>(dim) * sizeof(float));
      label_buf_[static_cast<size_t>(i)] = lab[row];
    }
    batch.features = {feature_buf_.data(), DType::kF32, {size, dim}, Device::kCPU};
    batch.labels = {label_buf_.data(), DType::kI32, {size}, Device::kCPU};
  }
  cursor_.position += size;
  Normalise();
  return batch;
}

}  // namespace tessera::data
