// --model=word2vec: skip-gram with negative sampling (Mikolov et al. 2013) over a text
// corpus (worker/data/corpus.h), both embedding tables sparse on the servers
// (docs/models.md, "word2vec"):
//   "w2v.input"  row w = v_w, the word's vector, U(-0.5/dim, 0.5/dim) initially;
//   "w2v.output" row w = u_w, its context vector, zero initially.
// Example = one center position of this worker's token shard. Per epoch e, the
// occurrence at global position p is kept with probability KeepProbabilities(t)[w]
// (decided by a hash of (seed, e, p), so every run makes the same choices); a kept center
// draws a window b in [1, window] and pairs with every kept token within b positions
// (inside the shard). Each pair (c, o) adds  -log s(u_o . v_c) - sum_k log s(-u_nk . v_c)
// with `negatives` noise words n_k from the unigram^0.75 table (a draw equal to o is
// skipped).
//
// The pushed gradient is that of the batch's SUMMED pair loss: each pair contributes the
// update word2vec's own SGD would make, as in asynchronous (Hogwild) word2vec; the
// reported loss is the mean per pair. Held-out loss: the same objective, without
// subsampling and with fixed negatives, on at most heldout_pairs pairs (offsets +-1, +-2)
// of the held-out tail; the last evaluation batch pulls every input vector for the nearest
// neighbours (cosine) and --embeddings_out.
//
// Thread safety: one thread.
#pragma once

#include <memory>

#include "worker/sparse/workload.h"
#include "worker/train_config.h"

namespace tessera::worker::sparse {

// The two tables, without loading anything.
std::vector<ParamSpec> Word2VecSparseParams(const TrainConfig& config);

// Loads the corpus from config.data_dir (every worker builds the same vocabulary).
Result<std::unique_ptr<SparseWorkload>> CreateWord2VecWorkload(const TrainConfig& config, int rank,
                                                               int world);

}  // namespace tessera::worker::sparse
