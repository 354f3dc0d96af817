// Criteo Kaggle display-advertising TSV (the layout of the Kaggle "dac" train.txt), gzip
// or plain, loaded for --model=dlrm (worker/sparse/dlrm_workload.h). One example a line,
// 40 tab-separated fields:
//
//   label  I1 .. I13  C1 .. C26
//
// label: 0 or 1. I1..I13: integer counts (may be negative, e.g. I2) or empty. C1..C26:
// categorical values as hex hashes (8 hex digits in the real data; 1 to 8 accepted) or
// empty. Empty fields are handled as the reference DLRM does: a missing integer is 0
// before the transform, a missing categorical is a reserved id of its field.
//
// Transform (stored, so the model reads it directly): dense = log(1 + max(x, 0)).
// Categorical keys (one table per field): the reserved id 0 for an empty field, the
// hash + 1 otherwise, so that every value, 00000000 included, has its own row.
//
// Files in a data directory (CriteoSplitPaths): train.txt[.gz], and the labelled
// evaluation split valid.txt[.gz] (`tessera datagen criteo` writes both). The Kaggle
// test.txt has no labels, so without valid.txt the last seventh of train.txt (the Kaggle
// set's seventh day, as the reference DLRM splits it) is held out for evaluation.
//
// Partitioning: as every loader (dataset.h ShardRange), contiguous balanced shards of the
// training examples. A first pass counts the examples, the second keeps only this
// worker's range, so a worker holds its shard, not the file.
//
// Thread safety: CriteoExamples is a value; the functions are pure functions of the files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tessera::data {

inline constexpr int kCriteoDense = 13;
inline constexpr int kCriteoCategorical = 26;
inline constexpr int kCriteoFields = 1 + kCriteoDense + kCriteoCategorical;

struct CriteoExamples {
  std::vector<float> label;    // [num_examples], 0 or 1
  std::vector<float> dense;    // [num_examples * 13], log(1 + max(x, 0)), missing -> 0
  std::vector<uint64_t> keys;  // [num_examples * 26], 0 = missing, else hash + 1
  int64_t num_examples = 0;
  int64_t first_index = 0;     // index in the file of local example 0
  int64_t total_examples = 0;  // training examples over all workers

  std::span<const float> dense_of(int64_t i) const {
    return {dense.data() + i * kCriteoDense, kCriteoDense};
  }
  std::span<const uint64_t> keys_of(int64_t i) const {
    return {keys.data() + i * kCriteoCategorical, kCriteoCategorical};
  }
};

// One parsed line: the label, the 13 transformed dense values, the 26 keys.
struct CriteoRow {
  float label = 0;
  float dense[kCriteoDense] = {};
  uint64_t keys[kCriteoCategorical] = {};
};

// Parses one line (without its newline). InvalidArgument saying what is wrong (field
// count, which field, the bad text) for anything but the layout above.
Status ParseCriteoLine(std::string_view line, CriteoRow* row);

// Examples (non-empty lines) in `path`, stopping at `limit` when > 0. NotFound / IOError
// / Corruption name the file.
Result<int64_t> CountCriteoExamples(const std::string& path, int64_t limit = 0);

// Examples [begin, end) of `path` (0-based, counting non-empty lines). Corruption
// "<file>:<line>: ..." for a bad line, also when the file has fewer than `end` examples.
Result<CriteoExamples> LoadCriteoRange(const std::string& path, int64_t begin, int64_t end);

struct CriteoPaths {
  std::string train;
  std::string valid;  // empty: the tail of `train` is the evaluation split
};
// train.txt.gz or train.txt in `dir` (required; NotFound naming the directory), and
// valid.txt.gz or valid.txt when present.
Result<CriteoPaths> CriteoSplitPaths(const std::string& dir);

// Where the splits lie in the files: worker `rank` of `world` trains on train examples
// [train.begin, train.end) of paths.train, and evaluation reads examples [eval.begin,
// eval.end) of (paths.valid or, when empty, paths.train). train_limit / test_limit: when
// > 0, only the first N training / evaluation examples are used.
struct CriteoPlan {
  int64_t total_train = 0;
  int64_t train_begin = 0, train_end = 0;
  int64_t eval_begin = 0, eval_end = 0;
};
Result<CriteoPlan> PlanCriteo(const CriteoPaths& paths, int rank, int world, int64_t train_limit,
                              int64_t test_limit);

}  // namespace tessera::data
