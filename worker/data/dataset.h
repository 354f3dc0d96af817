// Dataset: an in-memory, per-worker partition of a labelled data set, and the loaders
// that build it (MNIST and Fashion-MNIST from their IDX files).
//
// Partitioning rule (docs/models.md): the N examples of a file are split into W
// contiguous, balanced shards; worker r owns global indices [r*N/W, (r+1)*N/W) (integer
// division), so shard sizes differ by at most one and every example is owned by exactly
// one worker. A worker decompresses the whole file (gzip cannot seek) but keeps only its
// shard in memory.
//
// Thread safety: a Dataset is a value; concurrent reads are safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/tensor.h"

namespace tessera::data {

enum class Split : uint8_t { kTrain = 0, kTest = 1 };

// "train" or "test" (also "t10k"). Anything else -> InvalidArgument.
Result<Split> ParseSplit(std::string_view name);
std::string_view SplitName(Split split);

// [begin, end) of global example indices.
struct ExampleRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  friend bool operator==(const ExampleRange&, const ExampleRange&) = default;
};

// The contiguous shard of worker `rank` out of `world` over `n` examples (rule above).
// REQUIRES: 0 <= rank < world, n >= 0.
ExampleRange ShardRange(int64_t n, int rank, int world);

struct Dataset {
  Tensor features;  // f32 [num_examples, dim], pixels scaled to [0, 1]
  Tensor labels;    // i32 [num_examples], each in [0, num_classes)
  int64_t num_examples = 0;
  int64_t dim = 0;
  int num_classes = 0;
  int64_t first_index = 0;     // global index (in the file) of local example 0
  int64_t total_examples = 0;  // examples in the whole file, before partitioning

  // Rows [begin, end) as views into features/labels (no copy; valid while *this lives).
  // REQUIRES: 0 <= begin <= end <= num_examples.
  TensorView FeatureRows(int64_t begin, int64_t end) const;
  TensorView LabelRows(int64_t begin, int64_t end) const;
};

struct LoadOptions {
  // This worker's rank and the number of workers sharing the data set. Default: 0 of 1.
  int rank = 0;
  int world = 1;
  // When > 0, only the first `limit` examples of the file are used (then partitioned).
  // For tests and quick runs. Default: 0 (all).
  int64_t limit = 0;
};

// Loads an IDX image file ([N, rows, cols] u8) and its IDX label file ([N] u8) and keeps
// this worker's shard. Returns NotFound for a missing file, Corruption (naming the file
// and offset) for a damaged one, when the two files disagree on N, or when a label is
// >= num_classes; InvalidArgument for bad options.
Result<Dataset> LoadIdxPair(const std::string& images_path, const std::string& labels_path,
                            int num_classes, const LoadOptions& options = {});

// MNIST / Fashion-MNIST (same file names): <dir>/train-images-idx3-ubyte.gz and
// train-labels-idx1-ubyte.gz, or t10k-*. When the .gz file is absent, the uncompressed
// name (without .gz) is tried. 10 classes, dim 784.
Result<Dataset> LoadMnist(const std::string& dir, Split split, const LoadOptions& options = {});

}  // namespace tessera::data
