// TrainLoop: the one training loop both trainers run, the dense one (worker/trainer.h)
// and the sparse one (worker/sparse/sparse_trainer.h). It holds what does not depend on
// the model: the run (setup, the steps with a checkpoint boundary before each, the last
// boundary, the final barrier, the summary), the resume point, the dense parameters'
// initial pull, pushes and pulls, the all-reduce side (GradSync), the checkpoint answers
// and worker 0's progress window. A trainer supplies the model-specific steps: the
// virtual methods, called by Run in the order they are declared.
//
// Thread safety: one thread (the worker's main thread) runs it; the client's reactor
// thread writes pulled values into the parameters while a pull is in flight.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/client.h"
#include "worker/data/batch_iterator.h"
#include "worker/grad_sync.h"
#include "worker/loop_common.h"
#include "worker/model/model.h"
#include "worker/train_config.h"
#include "worker/train_metrics.h"

namespace tessera::worker {

class TrainLoop {
 public:
  virtual ~TrainLoop();
  TrainLoop(const TrainLoop&) = delete;
  TrainLoop& operator=(const TrainLoop&) = delete;

  // Setup, every step and (worker 0) the final evaluation. Returns the summary (test
  // fields and params_digest are filled on worker 0 only), or the first error: NotFound /
  // Corruption for the data files (naming the file), InvalidArgument for a --metrics_out
  // that cannot be written, or whatever a push/pull/barrier failed with.
  Result<TrainSummary> Run();

  TrainerState state() const { return {next_step_, cursor()}; }

 protected:
  // REQUIRES: CheckConfigAndPlace(config, place, ...) is OK.
  TrainLoop(const TrainConfig& config, const TrainerPlace& place);

  // What every trainer's Create checks first: ValidateTrainConfig, then CheckPlace.
  static Status CheckConfigAndPlace(const TrainConfig& config, const TrainerPlace& place, const char* who);

  // ---- the model-specific steps ------------------------------------------------------
  // Loads the data and the model: sets planned_steps_ and steps_per_epoch_, calls
  // ResumeAt, DeclareDense and StartCheckpoints.
  virtual Status Setup() = 0;
  // Once, before the first step (not called when there is none).
  virtual Status BeforeSteps() { return Status::OK(); }
  // The data cursor at the boundary before next_step_ (the checkpointed state).
  virtual data::DataCursor cursor() const = 0;
  // Step `step`; a step that succeeds ends with EndStep.
  virtual Status RunStep(int64_t step) = 0;
  // After `done` steps, the last of them successful.
  virtual Status AfterStep(int64_t done) { return Status::OK(); }
  // A step failed: wait out what is still in flight into memory the trainer owns.
  virtual void AbandonSteps() {}
  // After every worker passed the final barrier: worker 0's final pull and evaluation.
  virtual Status FinishAfterBarrier() = 0;
  // The trainer's own summary fields, set before the summary is written.
  virtual void CompleteSummary() {}
  // The per-phase timing line every worker logs at the end.
  virtual std::string PhaseLine() const = 0;

  // ---- pieces for those steps --------------------------------------------------------
  Clock::duration Timeout() const { return RequestTimeout(config_.request_timeout_s); }
  Status WaitAll(std::vector<Handle>* handles, const char* what) {
    return worker::WaitAll(handles, Timeout(), what);
  }
  data::BatchIteratorOptions BatchOptions() const;
  // With a resume point (resume.step >= 0), starts at its step with `seek` at its cursor.
  Status ResumeAt(const ResumePoint& resume, const std::function<Status(const data::DataCursor&)>& seek);
  // The model's dense parameters (not owned; `ids` their server ids): routes them
  // (GradSync) and pulls every one's initial value for next_step_, whatever the routing.
  // On a device, `params` are DeviceStaging's host mirrors and `device_params` the
  // model's own (GradSync::Create; all-reduced through place_.device_comm when set).
  Status DeclareDense(std::vector<model::Parameter*> params, std::vector<uint32_t> ids, const char* what,
                      std::vector<model::Parameter*> device_params = {});
  // The checkpoint answers and, on resume, the all-reduced parameters' state. After
  // DeclareDense.
  Status StartCheckpoints(const ResumePoint& resume);
  // Pulls the dense parameters `which` (indices into dense_) for `step`.
  void IssueDensePulls(int64_t step, const std::vector<size_t>& which, std::vector<Handle>* handles);
  // Pushes the server-held dense gradients for `step`.
  void IssueDensePushes(int64_t step, std::vector<Handle>* handles);
  // Waits for the all-reduced gradients and applies their update (GradSync::FinishStep).
  Status FinishAllReduce();
  // Counts the step's samples and reports it: to the coordinator and, on worker 0, to
  // the metrics file and the progress window.
  void EndStep(int64_t step, double loss, int64_t samples);

  // Constant after construction
  const TrainConfig config_;
  const TrainerPlace place_;
  const bool leader_;  // worker 0: logs, evaluates, writes metrics

  std::vector<model::Parameter*> dense_;
  std::vector<uint32_t> dense_ids_;  // server-side id of dense_[i]
  // Dense routing: server_dense_ (indices into dense_) are pushed and pulled every step
  // (all of them in bsp/ssp/asp), grad_sync_ all-reduces the others.
  std::unique_ptr<GradSync> grad_sync_;
  std::vector<size_t> server_dense_;
  std::vector<size_t> all_dense_;
  std::unique_ptr<MetricsWriter> metrics_;  // worker 0
  std::unique_ptr<CheckpointAnswerer> checkpoints_;

  int64_t planned_steps_ = 0;
  int64_t steps_per_epoch_ = 1;
  int64_t next_step_ = 0;
  int64_t samples_ = 0;  // this worker's
  TrainSummary summary_;

 private:
  Status Finish();

  ProgressWindow window_;  // worker 0
};

}  // namespace tessera::worker
