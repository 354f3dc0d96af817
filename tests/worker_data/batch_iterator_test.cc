#include "worker/data/batch_iterator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "tests/testutil/testutil.h"

namespace tessera::data {
namespace {

// n examples of dim 3: row i = {i, i + 0.25, i + 0.5}, label i % 10.
Dataset MakeDataset(int64_t n) {
  Dataset ds;
  ds.num_examples = n;
  ds.dim = 3;
  ds.num_classes = 10;
  ds.total_examples = n;
  ds.features = Tensor::Zeros(DType::kF32, {n, 3});
  ds.labels = Tensor::Zeros(DType::kI32, {n});
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < 3; ++d)
      ds.features.as<float>()[i * 3 + d] = static_cast<float>(i) + 0.25f * d;
    ds.labels.as<int32_t>()[i] = static_cast<int32_t>(i % 10);
  }
  return ds;
}

// The example indices of a batch (read back from feature column 0), checking that each
// row and label are consistent.
std::vector<int64_t> Indices(const Batch& b) {
  std::vector<int64_t> out;
  for (int64_t r = 0; r < b.size; ++r) {
    const float* row = b.features.as<float>() + r * 3;
    const auto i = static_cast<int64_t>(row[0]);
    EXPECT_EQ(row[2], static_cast<float>(i) + 0.5f) << "row " << r;
    EXPECT_EQ(b.labels.as<int32_t>()[r], i % 10) << "row " << r;
    out.push_back(i);
  }
  return out;
}

TEST(BatchIterator, EpochVisitsEveryExampleOnceWithShortLastBatch) {
  const Dataset ds = MakeDataset(23);
  auto it = BatchIterator::Create(&ds, {.batch_size = 5, .seed = 9});
  ASSERT_OK(it.status());
  EXPECT_EQ(it->batches_per_epoch(), 5);
  std::vector<int64_t> seen;
  for (int k = 0; k < 5; ++k) {
    auto b = it->Next();
    ASSERT_OK(b.status());
    EXPECT_EQ(b->size, k < 4 ? 5 : 3) << "batch " << k;
    EXPECT_EQ(b->features.shape, (Shape{b->size, 3}));
    EXPECT_EQ(b->labels.shape, (Shape{b->size}));
    EXPECT_EQ(b->start, (DataCursor{0, 5 * k}));
    const auto idx = Indices(*b);
    seen.insert(seen.end(), idx.begin(), idx.end());
  }
  EXPECT_EQ(it->cursor(), (DataCursor{1, 0}));
  std::vector<int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 23; ++i) EXPECT_EQ(sorted[i], i) << "index " << i;
  EXPECT_NE(seen, sorted) << "epoch 0 was not shuffled";
}

TEST(BatchIterator, NextEpochHasAnotherOrder) {
  const Dataset ds = MakeDataset(40);
  auto it = BatchIterator::Create(&ds, {.batch_size = 40, .seed = 1});
  ASSERT_OK(it.status());
  const auto e0 = Indices(*it->Next());
  const auto e1 = Indices(*it->Next());
  EXPECT_NE(e0, e1);
  EXPECT_EQ(it->cursor(), (DataCursor{2, 0}));
}

TEST(BatchIterator, DropLastGivesOnlyFullBatches) {
  const Dataset ds = MakeDataset(23);
  auto it = BatchIterator::Create(&ds, {.batch_size = 5, .drop_last = true});
  ASSERT_OK(it.status());
  EXPECT_EQ(it->batches_per_epoch(), 4);
  for (int k = 0; k < 12; ++k) {
    auto b = it->Next();
    ASSERT_OK(b.status());
    EXPECT_EQ(b->size, 5);
    EXPECT_EQ(b->start, (DataCursor{k / 4, 5 * (k % 4)})) << "batch " << k;
  }
}

TEST(BatchIterator, WithoutShuffleVisitsFileOrderWithoutCopying) {
  const Dataset ds = MakeDataset(7);
  auto it = BatchIterator::Create(&ds, {.batch_size = 4, .shuffle = false});
  ASSERT_OK(it.status());
  auto b0 = it->Next();
  EXPECT_EQ(Indices(*b0), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(b0->features.data, ds.features.data());
  EXPECT_EQ(Indices(*it->Next()), (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(Indices(*it->Next()), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(BatchIterator, SameSeedGivesSameStreamAndWorkerChangesIt) {
  const Dataset ds = MakeDataset(50);
  auto a = BatchIterator::Create(&ds, {.batch_size = 8, .seed = 3, .worker = 1});
  auto b = BatchIterator::Create(&ds, {.batch_size = 8, .seed = 3, .worker = 1});
  auto c = BatchIterator::Create(&ds, {.batch_size = 8, .seed = 3, .worker = 2});
  bool differs = false;
  for (int k = 0; k < 20; ++k) {
    const auto ia = Indices(*a->Next());
    EXPECT_EQ(ia, Indices(*b->Next())) << "batch " << k;
    differs |= ia != Indices(*c->Next());
  }
  EXPECT_TRUE(differs);
}

TEST(BatchIterator, SavedCursorResumesIdentically) {
  const Dataset ds = MakeDataset(37);
  const BatchIteratorOptions opts{.batch_size = 6, .seed = 11, .worker = 2};
  auto first = BatchIterator::Create(&ds, opts);
  ASSERT_OK(first.status());
  for (int k = 0; k < 9; ++k) ASSERT_OK(first->Next().status());  // into epoch 1
  const DataCursor saved = first->cursor();
  EXPECT_EQ(saved, (DataCursor{1, 12}));
  std::vector<std::vector<int64_t>> expected;
  std::vector<DataCursor> starts;
  for (int k = 0; k < 15; ++k) {
    auto b = first->Next();
    expected.push_back(Indices(*b));
    starts.push_back(b->start);
  }

  auto resumed = BatchIterator::Create(&ds, opts);
  ASSERT_OK(resumed.status());
  ASSERT_OK(resumed->Seek(saved));
  for (int k = 0; k < 15; ++k) {
    auto b = resumed->Next();
    ASSERT_OK(b.status());
    EXPECT_EQ(b->start, starts[k]) << "batch " << k;
    EXPECT_EQ(Indices(*b), expected[k]) << "batch " << k;
  }
  EXPECT_EQ(resumed->cursor(), first->cursor());
}

TEST(BatchIterator, SeekToEndOfEpochMovesToNextEpoch) {
  const Dataset ds = MakeDataset(10);
  auto it = BatchIterator::Create(&ds, {.batch_size = 4, .drop_last = true});
  ASSERT_OK(it->Seek({3, 10}));
  EXPECT_EQ(it->cursor(), (DataCursor{4, 0}));
  ASSERT_OK(it->Seek({3, 9}));  // only 1 example left: dropped
  EXPECT_EQ(it->cursor(), (DataCursor{4, 0}));
  ASSERT_OK(it->Seek({3, 5}));  // mid-epoch, not on a batch boundary
  EXPECT_EQ(it->Next()->start, (DataCursor{3, 5}));
}

TEST(BatchIterator, SeekOutsideTheDatasetIsInvalidArgument) {
  const Dataset ds = MakeDataset(10);
  auto it = BatchIterator::Create(&ds, {.batch_size = 4});
  EXPECT_EQ(it->Seek({-1, 0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(it->Seek({0, 11}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(it->Seek({0, -1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(it->cursor(), (DataCursor{0, 0}));
}

TEST(BatchIterator, CreateRejectsBadOptions) {
  const Dataset ds = MakeDataset(10);
  const Dataset empty;
  EXPECT_EQ(BatchIterator::Create(&ds, {.batch_size = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchIterator::Create(&empty, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchIterator::Create(nullptr, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchIterator::Create(&ds, {.batch_size = 11, .drop_last = true}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_OK(BatchIterator::Create(&ds, {.batch_size = 11}).status());
}

}  // namespace
}  // namespace tessera::data
