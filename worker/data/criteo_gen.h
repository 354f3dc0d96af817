// A Criteo-shaped synthetic data set with a planted model (`tessera datagen criteo`), so
// that a DLRM run has a known ceiling: the files have the Kaggle TSV layout
// (worker/data/criteo.h), and the labels are drawn from a logistic model the generator
// knows, whose AUC on the evaluation split is the best any model can expect there.
//
// Per example:
//  - C_f (f = 1..26): a Zipf-distributed rank r in [1, card_f] (exponent 1.05..1.3 by
//    field), written as the 8-hex-digit hash of (seed, f, r); card_f are the cardinalities
//    of the Kaggle set (3 .. 10,131,227). Some fields are empty with a field's
//    probability (up to 0.4, as C19..C26 of the real data).
//  - I_k (k = 1..13): log-normal counts of field-dependent scale, empty with a field's
//    probability; I2 takes small negative values at times, as in the real data.
//  - label ~ Bernoulli(sigmoid(z)) with the planted logit
//      z = bias + sum_k a_k (log1p(max(I_k, 0)) - m_k)       (6 of the dense fields)
//            + sum_f w_f(r_f)                                (the 64 most frequent ranks
//                                                             of each field; others 0)
//            + sum_{(f,g) in 3 pairs} <u_f(r_f), u_g(r_g)>   (4-wide latent vectors of
//                                                             the head ranks)
//    every weight a pure function of (seed, field, rank).
// Row i of a split is a pure function of (seed, split, i): the train file of N rows is
// the first N rows of any longer one, and the output is deterministic in (rows, seed).
//
// Thread safety: pure functions (they write only the given files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tessera::data {

// The Kaggle set's distinct values per categorical field, C1..C26.
const std::vector<int64_t>& CriteoCardinalities();

struct CriteoGenOptions {
  int64_t rows = 100000;    // training rows (train.txt)
  int64_t valid_rows = -1;  // valid.txt rows; -1: rows / 10, at least 1000
  uint64_t seed = 1;
  std::string out_dir;  // created if missing
  // Every field's cardinality times this (at least 1): > 1 for more distinct ids than the
  // Kaggle set has (33.8 M over the 26 fields). Default: 1.
  double card_scale = 1;
  // Added to every field's Zipf exponent: < 0 flattens the tails (more distinct ids per
  // row). Default: 0.
  double zipf_offset = 0;
};

struct CriteoGenReport {
  std::string train_path, valid_path;
  double positive_rate = 0;  // over train.txt
  // The planted logit of every valid.txt row and its label, in file order (the caller
  // scores the ceiling: worker/sparse/binary_metrics.h Auc).
  std::vector<float> valid_logits, valid_labels;
};

// One row's text (without newline) and planted logit; `split` 0 = train, 1 = valid.
std::string CriteoSyntheticLine(const CriteoGenOptions& options, int split, int64_t row,
                                float* logit);

// Writes <out_dir>/train.txt and <out_dir>/valid.txt. InvalidArgument for rows < 1, no
// out_dir, card_scale outside (0, 1000] or zipf_offset outside [-1, 1]; IOError naming the
// file when writing fails.
Result<CriteoGenReport> GenerateCriteo(const CriteoGenOptions& options);

}  // namespace tessera::data
