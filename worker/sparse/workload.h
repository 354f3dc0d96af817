// SparseWorkload: what the sparse training loop (worker/sparse/sparse_trainer.h) needs
// from a model whose parameters are mostly sparse tables on the servers (logreg,
// widedeep, word2vec, dlrm). The loop owns the network; the workload owns the data and the
// math, and never talks to the servers itself:
//
//   Prepare(examples)  -> the distinct keys of every sparse table this batch touches
//   (loop pulls exactly those rows, and the dense parameters, for the step)
//   Step(batch)        -> loss; one gradient row per distinct key, dense grads
//   (loop pushes them)
//
// Evaluation (worker 0) uses the same shape: PrepareEval(i) names the rows batch i
// needs, the loop pulls them, Eval(i) accumulates, FinishEval() reports.
//
// Thread safety: one thread (the worker's main thread) uses a workload.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"
#include "worker/model/layer.h"

namespace tessera::worker::sparse {
class RowStaging;
}

namespace tessera::worker::sparse {

// One sparse table's share of a batch.
struct SparseRows {
  std::vector<Key> keys;  // distinct (the loop sends exactly these)
  Tensor values;          // f32 [keys.size(), width]: filled by the pull
  Tensor grads;           // f32 [keys.size(), width]: filled by Step
  // The device whose copy queue reads values and writes grads (worker/sparse/row_staging.h):
  // kCUDA allocates them pinned; kCPU (the default, also under --staging_on_cpu) plain.
  Device pinned_for = Device::kCPU;

  // Sizes values/grads for keys.size() rows of `width` (reusing capacity). Errors: a
  // pinned allocation that failed.
  Status Resize(int64_t width);
};

struct SparseBatch {
  std::vector<SparseRows> tables;  // in SparseParams() order
  int64_t examples = 0;            // examples (samples) in the batch
  // Step's gradients are those of (returned loss) * loss_scale: 1 for a mean-loss model,
  // the number of pairs for word2vec (whose gradient is of the summed loss).
  double loss_scale = 1;
  // Which of the workload's two per-batch layouts this batch uses (0 or 1): the loop
  // prepares batch s+1 in the other slot while batch s is still to be computed.
  int slot = 0;
};

// What an evaluation produced. Negative for a metric the model does not have.
struct EvalReport {
  double test_auc = -1;
  double accuracy = -1;  // logreg, widedeep: fraction right at logit > 0
  double logloss = -1;
  double heldout_loss = -1;
  int64_t examples = 0;
  std::vector<std::string> lines;  // extra human-readable lines (nearest neighbours)
};

class SparseWorkload {
 public:
  virtual ~SparseWorkload() = default;

  // The device path of the embedding rows (not owned; it outlives the workload's steps),
  // or null for the host path. When set, Step gathers the rows its positions read and
  // scatter-adds their gradients through it (RowStaging::LoadRows has run for the batch);
  // Eval stays on the host path.
  void set_row_staging(RowStaging* staging) { staging_ = staging; }
  // True when DenseParameters() live on the staging device (widedeep's MLP under
  // --device=cuda or --staging_on_cpu): the loop then keeps host mirrors of them
  // (worker/device_staging.h), copies their values to the device after each pull and
  // their gradients back after each Step.
  virtual bool dense_on_device() const { return false; }

  virtual std::string name() const = 0;
  // Sparse tables (kind kSparse), in the order SparseBatch::tables uses.
  virtual std::vector<ParamSpec> SparseParams() const = 0;
  // Dense parameters, pulled and pushed whole every step (empty for logreg, word2vec).
  virtual std::vector<model::Parameter*> DenseParameters() = 0;

  // Training examples on this worker and over all workers (the unit of --batch_size).
  virtual int64_t local_examples() const = 0;
  virtual int64_t total_examples() const = 0;

  // Fills every table's distinct keys for local examples `examples` of epoch `epoch`
  // and sizes values/grads. `batch->tables` has SparseParams().size() entries.
  virtual Status Prepare(std::span<const int64_t> examples, int64_t epoch, SparseBatch* batch) = 0;
  // Forward and backward on the pulled values: fills every grads tensor (row i = the
  // gradient of the batch objective w.r.t. row keys[i]) and the dense grads, and sets
  // batch->loss_scale. Returns the batch's mean loss.
  virtual Result<double> Step(SparseBatch* batch) = 0;

  virtual int64_t NumEvalBatches() const = 0;
  virtual Status PrepareEval(int64_t i, SparseBatch* batch) = 0;
  virtual Status Eval(int64_t i, const SparseBatch& batch) = 0;
  // Metrics over the Eval calls since the last FinishEval; resets the accumulators.
  virtual EvalReport FinishEval() = 0;

 protected:
  RowStaging* staging_ = nullptr;
};

}  // namespace tessera::worker::sparse
