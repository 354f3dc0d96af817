// Trainer: one worker's steps of the training loop (worker/train_loop.h) for the dense
// models, against the parameter servers.
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
//   checkpoints: at each step boundary (and after the last step) the loop answers a
//            pending checkpoint prepare with the state at that step; a resumed run
//            starts at the checkpoint's step with its data cursor.
//
// Push and pull are separate requests rather than one pushPull because a pushPull
// carries one step for both halves, and a pull gated on step s would not wait for step
// s's own update. Gradients and values are sent from and received into the model's
// Parameter tensors directly (zero copy); the loop never touches them while a request is
// in flight.
//
// Worker 0 also prints progress on stderr, writes --metrics_out and prints the summary.
//
// On a device (TrainerPlace::device, --device=cuda), the model computes in device memory
// and DeviceStaging (worker/device_staging.h) holds host mirrors of its parameters: the
// loop above pulls into, pushes from, all-reduces and checkpoints the mirrors. Each
// step's batch is copied to the device while the previous step waits for its pulls
// (prefetched; cursor() is then the cursor before it); each layer's gradients are copied to the host as
// backward produces them and pushed at once (zero-copy, from pinned memory), so a
// layer's push overlaps the next layer's backward; each pulled (or locally updated)
// value is copied to the device as soon as it is in, and all before the next forward.
//
// Thread safety: one thread (the worker's main thread) runs a Trainer; the client's
// reactor thread writes pulled values into the model while a pull is in flight.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "worker/data/batch_iterator.h"
#include "worker/data/dataset.h"
#include "worker/device_staging.h"
#include "worker/model/model.h"
#include "worker/train_config.h"
#include "worker/train_loop.h"

namespace tessera::worker {

// The dense models' steps of the training loop (worker/train_loop.h).
class Trainer : public TrainLoop {
 public:
  // Validates `config` (ValidateTrainConfig) and the place. Does no I/O.
  static Result<std::unique_ptr<Trainer>> Create(const TrainConfig& config, const TrainerPlace& place);
  ~Trainer() override;

 private:
  Trainer(const TrainConfig& config, const TrainerPlace& place) : TrainLoop(config, place) {}

  Status Setup() override;
  // The cursor before a prefetched batch, so a checkpoint at this boundary resumes with it.
  data::DataCursor cursor() const override {
    if (prefetched_) return prefetch_cursor_;
    return batches_ ? batches_->cursor() : data::DataCursor{};
  }
  Status RunStep(int64_t step) override;
  // --eval_every.
  Status AfterStep(int64_t done) override;
  Status FinishAfterBarrier() override;
  std::string PhaseLine() const override;
  Status Evaluate(int64_t step, double* accuracy, double* loss, int64_t* examples);
  void AbandonSteps() override;

  // ---- the staged (device) path; staging_ is null on the host path -------------------
  // Builds staging_ over the model's parameters; returns the mirrors for DeclareDense.
  Result<std::vector<model::Parameter*>> StartStaging();
  // A mirror's gradient is on the host: mark it for its bucket, or push it now.
  void OnMirrorGradReady(model::Parameter* mirror);
  // Forward and backward on the device, on the started batch; the server-routed
  // gradients are pushed into early_pushes_ as they come.
  Result<model::LossResult> StagedCompute();
  // Takes the next batch and starts its copy to the device (step `next`'s batch, while
  // this step waits for its pulls).
  Status Prefetch();
  // Copies the values of dense_[i] for every i in `which` to the device and waits.
  Status ValuesToDevice(const std::vector<size_t>& which);
  // Waits for the pulls (handles[k] pulls dense_[which[k]]), copying each value to the
  // device as soon as it is in; then waits for the copies.
  Status WaitPullsToDevice(std::vector<Handle>* handles, const std::vector<size_t>& which, const char* what);

  std::unique_ptr<model::Model> model_;
  std::unique_ptr<DeviceStaging> staging_;
  std::unordered_map<const model::Parameter*, size_t> mirror_index_;  // mirror -> index into dense_
  std::vector<bool> server_routed_;  // by dense_ index
  std::vector<bool> pushed_;         // by dense_ index, this step
  std::vector<Handle> early_pushes_;
  int64_t step_ = 0;                 // the step being computed (early pushes carry it)
  bool prefetched_ = false;          // the next step's batch is started (StartBatch)
  int64_t prefetched_size_ = 0;
  data::DataCursor prefetch_cursor_;  // the iterator's cursor before that batch
  Status hook_error_;
  data::Dataset train_;
  data::Dataset test_;  // worker 0 only
  std::unique_ptr<data::BatchIterator> batches_;
};

}  // namespace tessera::worker
