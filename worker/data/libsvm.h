// LIBSVM / SVMlight text data ("<label> <index>:<value> ..." per line, gzip or plain)
// loaded into a compact per-worker partition for the sparse models (worker/model/
// sparse_*). Same partitioning rule as the dense loaders (dataset.h, ShardRange): the N
// examples of the file are split into W contiguous balanced shards.
//
// Labels: a value > 0 is the positive class (1), anything else (-1, 0) negative (0).
// Indices: integers >= 1; values: finite floats. Blank lines and lines starting with '#'
// are skipped (they are not examples). Anything else is Corruption naming file:line.
//
// Thread safety: SparseExamples is a value; LoadLibsvm is a pure function of the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/data/dataset.h"

namespace tessera::data {

struct SparseExamples {
  // Example i's features are feature[offsets[i] .. offsets[i+1]) (values likewise).
  std::vector<int64_t> offsets{0};
  std::vector<uint32_t> feature;
  std::vector<float> value;
  std::vector<float> label;  // 0 or 1
  int64_t num_examples = 0;
  uint32_t max_feature = 0;    // largest index seen in this shard
  int64_t first_index = 0;     // global index (in the file) of local example 0
  int64_t total_examples = 0;  // examples in the file (or the limit), before partitioning

  std::span<const uint32_t> features_of(int64_t i) const {
    return {feature.data() + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i])};
  }
  std::span<const float> values_of(int64_t i) const {
    return {value.data() + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i])};
  }
};

// Loads worker options.rank's shard of `path` (options.limit: only the first N examples).
// NotFound for a missing file, Corruption "<file>:<line>: ..." for a bad line or a
// damaged gzip stream, InvalidArgument for bad options.
Result<SparseExamples> LoadLibsvm(const std::string& path, const LoadOptions& options = {});

// The a9a-style pair in `dir`: <dir>/<name>.gz for train and <dir>/<name>.t.gz for test
// (or without .gz), where <name> is the first such train file: "a9a", "train".
// NotFound naming the directory when none exists.
Result<std::string> LibsvmSplitPath(const std::string& dir, Split split);

}  // namespace tessera::data
