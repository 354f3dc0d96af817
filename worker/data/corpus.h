// Text corpora for word2vec: whitespace-separated tokens from gzip or plain text files,
// the vocabulary, per-worker partitioning and a held-out tail.
//
// Rules (docs/models.md, "word2vec"):
//  - Tokens are maximal runs of non-whitespace bytes; a line break is a separator like a
//    space. A byte outside printable ASCII (other than tab, CR, LF) is Corruption naming
//    file:line: the corpora we ship are cleaned lowercase text, so such a byte means a
//    wrong or damaged file.
//  - The first `limit` tokens (0 = all) form the corpus; its last heldout_fraction of
//    tokens is the held-out part, the rest the training part.
//  - The vocabulary counts the training part only; words with count >= min_count get ids
//    0..V-1 by descending count, ties by word (so every worker builds the same one).
//    Out-of-vocabulary tokens are dropped from both parts.
//  - Worker r of W keeps the tokens at positions ShardRange(n_train, r, W) of the
//    (in-vocabulary) training sequence.
//
// Thread safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace tessera::data {

struct Vocab {
  std::vector<std::string> words;  // by id
  std::vector<int64_t> counts;     // by id, in the training part
  std::unordered_map<std::string, int32_t> ids;
  int64_t total = 0;  // sum of counts (in-vocabulary training tokens)

  int32_t size() const { return static_cast<int32_t>(words.size()); }
  // -1 when absent.
  int32_t Find(const std::string& w) const;
};

struct CorpusOptions {
  int64_t min_count = 5;           // Default: 5
  double heldout_fraction = 0.02;  // Default: 0.02, in [0, 0.5]
  int64_t limit = 0;               // first N tokens only; 0 = all. Default: 0
  int rank = 0;
  int world = 1;
};

struct Corpus {
  Vocab vocab;
  std::vector<int32_t> train;    // this worker's shard of the training ids
  std::vector<int32_t> heldout;  // the whole held-out part (every worker has it)
  int64_t first_index = 0;       // position of train[0] in the training sequence
  int64_t total_train = 0;       // in-vocabulary training tokens over all workers
};

// Reads every file of TextFilesAt(path) in order. NotFound / Corruption (file:line) /
// InvalidArgument (options, or a vocabulary that ends up empty, naming min_count).
Result<Corpus> LoadCorpus(const std::string& path, const CorpusOptions& options);

// Table of `size` word ids where id w fills a share proportional to counts[w]^power
// (word2vec's noise distribution, power 0.75): drawing a uniform slot samples it.
// REQUIRES: vocab non-empty, size >= vocab.size().
std::vector<int32_t> UnigramTable(const Vocab& vocab, double power, int64_t size);

// Probability of keeping one occurrence of word `id` under frequency subsampling with
// threshold t (word2vec: (sqrt(f / (t N)) + 1) * t N / f, capped at 1); t <= 0 keeps all.
std::vector<float> KeepProbabilities(const Vocab& vocab, double t);

}  // namespace tessera::data
