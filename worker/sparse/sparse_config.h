// Settings of the sparse models (--model=logreg, widedeep, word2vec, dlrm), part of
// TrainConfig. Every field is a `tessera train` flag of the same name (docs/training.md).
//
// Thread safety: a value; the functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tessera::worker {

struct SparseConfig {
  // logreg / widedeep: hash every set of up to cross_order active features (1: the
  // features alone, 2: plus every pair, 3: plus every triple). Default: 2.
  int cross_order = 2;
  // logreg / widedeep: keys of the hashed table live in [0, 2^hash_bits). Default: 24.
  int hash_bits = 24;
  // widedeep: embedding width per feature; word2vec: vector width; dlrm: width of every
  // categorical embedding and of the bottom MLP's output. Default: 16.
  int64_t embed_dim = 16;
  // dlrm: hidden widths of the bottom MLP over the 13 dense features (its output layer,
  // embed_dim wide, is added after them). Default: {64}.
  std::vector<int64_t> bottom_mlp = {64};
  // word2vec: maximum distance between center and context word. Default: 5.
  int window = 5;
  // word2vec: noise words per (center, context) pair. Default: 5.
  int negatives = 5;
  // word2vec: words rarer than this are dropped from the vocabulary. Default: 5.
  int64_t min_count = 5;
  // word2vec: frequency-subsampling threshold t (0 = off). Default: 1e-4.
  double subsample = 1e-4;
  // word2vec: fraction of the corpus (its tail) held out for the held-out loss. Default: 0.02.
  double heldout_fraction = 0.02;
  // word2vec: at most this many held-out (center, context) pairs are scored. Default: 20000.
  int64_t heldout_pairs = 20000;
  // word2vec: words whose nearest neighbours worker 0 logs at the end ("" = the 5 most
  // frequent words of length >= 4). Default: "".
  std::string neighbours;
  // word2vec: worker 0 writes the final input vectors as text ("word v1 v2 ...") here
  // ("" = none). Default: "".
  std::string embeddings_out;
};

// True for the models this file configures.
bool IsSparseModel(const std::string& model);

// InvalidArgument naming the flag and value for the first bad field.
Status ValidateSparseConfig(const SparseConfig& config);

}  // namespace tessera::worker
