// The a9a binary classifiers (docs/models.md): --model=logreg and --model=widedeep over
// LIBSVM data (worker/data/libsvm.h).
//
//  logreg:   logit = sum over hashed feature sets S of w[key(S)] * prod_{f in S} x_f,
//            S ranging over the bias, every active feature and (cross_order >= 2) every
//            pair / (3) triple of active features; key(S) = chained HashCombine of the
//            indices, masked to hash_bits. One sparse table "logreg.weight" (width 1).
//  widedeep: the same wide table ("wide.weight") plus a deep part: a sparse embedding
//            table "deep.embedding" (width embed_dim, keyed by feature index), the
//            active features' embeddings summed (weighted by x_f), then a dense MLP
//            (--hidden, --activation) to one logit; logit = wide + deep.
// Loss: mean sigmoid binary cross-entropy (kernels::SigmoidBinaryCrossEntropy). The deep
// rows go through kernels::EmbeddingGather / ScatterAdd.
//
// Thread safety: one thread.
#pragma once

#include <optional>

#include <memory>

#include "worker/sparse/workload.h"
#include "worker/train_config.h"

namespace tessera::worker::sparse {

// The key of the feature set `features` (sorted indices) under `hash_bits`; the empty
// set is the bias. Exposed for tests.
Key CrossKey(std::span<const uint32_t> features, int hash_bits);

// The sparse tables of config.model (logreg or widedeep), without loading anything.
std::vector<ParamSpec> CtrSparseParams(const TrainConfig& config);

// Loads this worker's training shard (and, with load_test, the whole test split) from
// config.data_dir. NotFound / Corruption name the file. `mlp_device`: where widedeep's MLP
// lives and computes (SparseWorkload::dense_on_device); nullopt: the host path.
Result<std::unique_ptr<SparseWorkload>> CreateCtrWorkload(const TrainConfig& config, int rank,
                                                          int world, bool load_test,
                                                          std::optional<Device> mlp_device = std::nullopt);

}  // namespace tessera::worker::sparse
