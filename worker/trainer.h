// Trainer: one worker's training loop against the parameter servers.
//
// Protocol with the servers (docs/training.md, docs/consistency.md), for steps
// s = 0 .. N-1, identical on every worker (bsp needs every worker to push every step):
//
//   setup:   load this worker's partition, build the model, DeclareParams, Pull(step 0)
//   step s:  forward + backward on the next batch
//            Push(grad, step s) for every parameter, then, unless s is the last step,
//            Pull(value, step s+1) for every parameter: all requests in flight at once,
//            then wait for all. bsp answers the pull once step s's update is applied,
//            ssp:K once the slowest worker pushed step s-K, asp at once.
//            ReportStep(s, loss) to the coordinator.
//   end:     Barrier (every worker's last push is in), then worker 0 pulls step N and
//            evaluates on the test split.
//   checkpoints: at each step boundary (and after the last step) CheckpointBoundary
//            answers a pending checkpoint prepare with the state at that step; a resumed
//            run starts at the checkpoint's step with its data cursor.
//
// Push and pull are separate requests rather than one pushPull because a pushPull
// carries one step for both halves, and a pull gated on step s would not wait for step
// s's own update. Gradients and values are sent from and received into the model's
// Parameter tensors directly (zero copy); the loop never touches them while a request is
// in flight.
//
// Worker 0 also prints progress on stderr, writes --metrics_out and prints the summary.
//
// Thread safety: one thread (the worker's main thread) runs a Trainer; the client's
// reactor thread writes pulled values into the model while a pull is in flight.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "collective/communicator.h"
#include "worker/client.h"
#include "worker/data/batch_iterator.h"
#include "worker/data/dataset.h"
#include "worker/grad_sync.h"
#include "worker/loop_common.h"
#include "worker/model/model.h"
#include "worker/train_config.h"
#include "worker/train_metrics.h"

namespace tessera::worker {

class Trainer {
 public:
  // Validates `config` (ValidateTrainConfig) and the place. Does no I/O.
  static Result<std::unique_ptr<Trainer>> Create(const TrainConfig& config, const TrainerPlace& place);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs setup, every step and (worker 0) the final evaluation. Returns the summary
  // (test fields and params_digest are filled on worker 0 only), or the first error:
  // NotFound / Corruption for the data files (naming the file), InvalidArgument for a
  // --metrics_out that cannot be written, or whatever a push/pull/barrier failed with.
  Result<TrainSummary> Run();

  TrainerState state() const;

 private:
  Trainer(const TrainConfig& config, const TrainerPlace& place);

  Status Setup();
  // At the boundary before `step` (and after the last one): remembers the data cursor
  // and answers a pending checkpoint prepare (docs/checkpoints.md).
  void CheckpointBoundary(int64_t step);
  Status RunStep(int64_t step);
  Status Finish();
  Status Evaluate(int64_t step, double* accuracy, double* loss, int64_t* examples);
  // Pulls the parameters `which` (indices into params_) for `step` into the model,
  // appending the handles.
  void IssuePulls(int64_t step, const std::vector<size_t>& which, std::vector<Handle>* handles);
  Status WaitAll(std::vector<Handle>* handles, const char* what) {
    return worker::WaitAll(handles, RequestTimeout(config_.request_timeout_s), what);
  }

  // Constant after construction
  const TrainConfig config_;
  const TrainerPlace place_;
  const bool leader_;  // worker 0: logs, evaluates, writes metrics

  std::unique_ptr<model::Model> model_;
  std::vector<model::Parameter*> params_;
  std::vector<uint32_t> param_ids_;  // server-side id of params_[i]
  // Gradient routing: server_params_ are pushed/pulled here (all of them in bsp/ssp/asp),
  // the rest all-reduced by grad_sync_.
  std::unique_ptr<GradSync> grad_sync_;
  std::vector<size_t> server_params_;
  std::vector<size_t> all_params_;
  data::Dataset train_;
  data::Dataset test_;  // worker 0 only
  std::unique_ptr<data::BatchIterator> batches_;
  std::unique_ptr<MetricsWriter> metrics_;

  int64_t planned_steps_ = 0;
  int64_t steps_per_epoch_ = 1;
  int64_t next_step_ = 0;
  int64_t samples_ = 0;  // this worker's
  std::unique_ptr<CheckpointAnswerer> checkpoints_;
  TrainSummary summary_;
  ProgressWindow window_;  // worker 0
};

}  // namespace tessera::worker
