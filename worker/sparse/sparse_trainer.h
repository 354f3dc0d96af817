// SparseTrainer: one worker's steps of the training loop (worker/train_loop.h) for the
// sparse models (SparseWorkload: logreg, widedeep, word2vec, dlrm). `tessera train` runs it
// instead of worker/trainer.h's dense steps when --model is one of them; the protocol
// with the servers is the same (docs/training.md), per step s = 0 .. N-1 on every worker:
//
//   wait     for the pull of step s's rows (issued earlier, below)
//   prefetch (ssp/asp only) prepare batch s+1 and pull its sparse rows tagged s+1 now,
//            so the pull overlaps this step's compute (the staleness --sync allows)
//   compute  forward + backward: one gradient row per distinct key, dense grads
//   push     every table's rows (every server gets a push per table, an empty one when
//            it owns none of the batch's keys) and every dense gradient, tagged step s
//   next     (bsp) prepare batch s+1 and pull its rows tagged s+1, in flight together
//            with the push (bsp answers it once step s is applied); dense parameters are
//            always pulled here, as they are the memory compute reads
//   report   wait for the push (and, in hybrid, the dense all-reduce); ReportStep(s, loss)
//
// "Prepare" = next local examples from IndexBatches; the workload dedups their keys per
// table. Batches alternate between two slots (SparseBatch::slot), so batch s+1 can be
// prepared and pulled into while batch s is in use. Requests to different servers are
// in flight at once (the client splits them).
//
// --sync=hybrid (docs/collective.md): the dense parameters (widedeep's MLP) are pulled
// from the servers once, at the first step, and from then on all-reduced (mean) among the
// workers by GradSync and updated by each worker with the servers' optimizer code, right
// after backward; only the sparse tables are pushed and pulled (the servers run bsp for
// them). A model without dense parameters (logreg, word2vec) then runs exactly as in bsp.
// --sync=allreduce is refused for every sparse model (CheckSparseSync).
//
// Worker 0 evaluates before the first step (the initial loss) and after the final
// barrier (pulling at step N), prints the nearest-neighbour lines word2vec produces, and
// fills the summary's test_auc / logloss / heldout_loss. params_digest chains the dense
// values and, for each final evaluation batch and table, its keys and pulled rows, then
// combines that with the servers' summed row digests (Client::PullStoreDigest: every
// resident row with its slots and counter), so it does not depend on the server count. When
// the dense parameters are all-reduced, every worker logs the digest of its own copy.
//
// Checkpoints (docs/checkpoints.md, --sync=bsp): at the boundary before step s (the batch
// of step s is already prepared, so its first example's cursor is the state) the loop
// answers a pending prepare with {s, data cursor}; the tables and dense values are on the
// servers. A resumed worker seeks that cursor and starts at s. Nothing else is needed:
// the batch order, word2vec's subsampling, windows and negatives are pure functions of
// (seed, epoch, position), and the workloads keep no state across steps.
//
// On a device (--device=cuda, or --staging_on_cpu: worker/sparse/row_staging.h): the pulled
// rows are copied to the device before each step's compute, the workload gathers and
// scatter-adds its embedding rows there (word2vec's dot products and dlrm's interaction
// too), and the row gradients come back into the batch's pinned blocks, which are pushed.
// A workload whose dense parameters live on the device (widedeep's MLP) gets DeviceStaging
// host mirrors: the loop pulls, pushes, all-reduces, checkpoints and digests those, and
// copies values to the device after each pull (and hybrid's local update) and gradients
// back after each step. dlrm's MLP towers stay on the host.
//
// Thread safety: one thread (the worker's main thread) runs it; the client's reactor
// writes pulled rows into the batch while a pull is in flight, and the loop does not touch
// them until the handles are done.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/client.h"
#include "worker/device_staging.h"
#include "worker/grad_sync.h"
#include "worker/data/index_batches.h"
#include "worker/sparse/row_staging.h"
#include "worker/sparse/workload.h"
#include "worker/train_config.h"
#include "worker/train_loop.h"
#include "worker/train_metrics.h"

namespace tessera::worker::sparse {

// The workload --model names, loaded for this worker (worker 0 also loads test data).
// `dense_device`: where a model whose dense part can live on a device (widedeep's MLP)
// puts it; nullopt: the host path.
Result<std::unique_ptr<SparseWorkload>> CreateWorkload(const TrainConfig& config, int worker_index,
                                                       int num_workers,
                                                       std::optional<Device> dense_device = std::nullopt);

// The sparse tables config.model declares, without loading any data.
std::vector<ParamSpec> SparseTableSpecs(const TrainConfig& config);

// Whether --sync=`sync` can train the sparse model config.model: InvalidArgument for
// allreduce (it would all-reduce whole tables), naming the tables and pointing to hybrid.
Status CheckSparseSync(const TrainConfig& config, const std::string& sync);

// The sparse models' steps of the training loop (worker/train_loop.h).
class SparseTrainer : public TrainLoop {
 public:
  // Validates the config and the place. Does no I/O.
  static Result<std::unique_ptr<SparseTrainer>> Create(const TrainConfig& config,
                                                       const TrainerPlace& place);

 private:
  SparseTrainer(const TrainConfig& config, const TrainerPlace& place) : TrainLoop(config, place) {}

  Status Setup() override;
  // Prepares the first batch and pulls its rows (the dense values came with Setup).
  Status BeforeSteps() override;
  // The iterator may be a batch ahead (prefetch): the next step's batch starts there.
  data::DataCursor cursor() const override;
  Status RunStep(int64_t step) override;
  // No reply may land in a batch after it is freed.
  void AbandonSteps() override;
  Status FinishAfterBarrier() override;
  void CompleteSummary() override;
  std::string PhaseLine() const override;
  // Next examples into batches_[step & 1] (slot step & 1), keys deduped by the workload.
  Status PrepareBatch(int64_t step);
  void IssueSparsePulls(SparseBatch* batch, int64_t step, std::vector<Handle>* handles);
  // Pulls the batch's rows and the server-held dense values for `step`, waiting for all.
  Status PullFor(SparseBatch* batch, int64_t step, const char* what);
  Result<EvalReport> Evaluate(int64_t step, uint64_t* digest);
  // dense_staging_: copies the mirrors dense_[which] to the device, and waits.
  Status DenseToDevice(const std::vector<size_t>& which);

  // Declared before the workload and the batches, so it outlives both (the workload keeps
  // a pointer; the batches' pinned blocks are read by its copies).
  std::unique_ptr<RowStaging> row_staging_;  // --device=cuda or --staging_on_cpu; else null
  // With row_staging_, when the workload's dense parameters are on the device: their host
  // mirrors (dense_), and the model's own parameters in dense_ order. Else null.
  std::unique_ptr<DeviceStaging> dense_staging_;
  std::vector<model::Parameter*> dense_model_;
  std::vector<size_t> reduced_dense_;  // indices into dense_ all-reduced (hybrid), not pulled
  std::unique_ptr<SparseWorkload> workload_;
  std::vector<uint32_t> table_ids_;
  std::vector<int64_t> table_width_;
  std::optional<data::IndexBatches> batches_;
  bool prefetch_early_ = false;       // sync is not bsp
  SparseBatch batch_[2];              // by step & 1
  std::vector<Handle> pulls_[2];      // in flight into batch_[i] (and dense values)
  data::DataCursor batch_cursor_[2];  // cursor at batch_[i]'s first example
  int64_t prepared_ = -1;             // last step whose batch was prepared
};

}  // namespace tessera::worker::sparse
