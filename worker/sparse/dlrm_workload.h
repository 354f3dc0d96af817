// --model=dlrm (docs/models.md#dlrm): the DLRM of Naumov et al. on Criteo-layout data
// (worker/data/criteo.h), as the reference implementation's "dot" model:
//
//   bottom MLP    the 13 dense features (log(1 + max(x, 0))) -> --bottom_mlp hidden widths
//                 -> embed_dim, --activation (ReLU by default) on every layer
//   embeddings    one sparse table per categorical field on the servers,
//                 "dlrm.emb.C1" .. "dlrm.emb.C26" (width embed_dim, keyed by
//                 worker/data/criteo.h's keys: 0 = the field's reserved missing id)
//   interaction   the pairwise dots of the 27 vectors (bottom output + 26 embeddings),
//                 kernels::PairwiseDot: 351 values, concatenated after the bottom output
//   top MLP       (embed_dim + 351) -> --hidden widths -> 1 logit (--activation, identity
//                 last)
//   loss          mean sigmoid binary cross-entropy
//
// Dense parameters (both MLPs) are pulled and pushed whole; the rows of each table are
// the batch's distinct keys of that field. Embedding rows go through
// kernels::EmbeddingGather / ScatterAdd.
//
// Thread safety: one thread (see SparseWorkload).
#pragma once

#include <memory>

#include "worker/sparse/workload.h"
#include "worker/train_config.h"

namespace tessera::worker::sparse {

// The 26 embedding tables, without loading anything.
std::vector<ParamSpec> DlrmSparseParams(const TrainConfig& config);

// Loads this worker's training shard (and, with load_test, the evaluation split) from
// config.data_dir (worker/data/criteo.h). NotFound / Corruption name the file.
Result<std::unique_ptr<SparseWorkload>> CreateDlrmWorkload(const TrainConfig& config, int rank,
                                                           int world, bool load_test);

}  // namespace tessera::worker::sparse
