// Pieces the two training loops share: the dense loop (worker/trainer.h) and the sparse
// one (worker/sparse/sparse_trainer.h). Where a worker sits in the job, waiting for a
// batch of client requests, phase timing, worker 0's progress window, and the worker's
// side of checkpoints (docs/checkpoints.md).
//
// Thread safety: everything here is used by the one thread that runs a training loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/shard_db.h"
#include "collective/communicator.h"
#include "common/clock.h"
#include "common/status.h"
#include "common/timeline.h"
#include "worker/client.h"
#include "worker/data/batch_iterator.h"
#include "worker/grad_sync.h"
#include "worker/handle.h"
#include "worker/train_metrics.h"

namespace tessera::worker {

// Where this worker sits in the job.
struct TrainerPlace {
  // Registered, DeclareParams not yet called. Not owned; outlives the Trainer.
  Client* client = nullptr;
  int worker_index = 0;
  int num_workers = 1;
  int num_servers = 1;
  std::string sync = "bsp";  // --sync, for the summary only (the servers enforce it)
  // --sync=allreduce|hybrid (docs/collective.md): the workers' communicator (not owned;
  // null with one worker) and how gradients are routed, fused and compressed.
  collective::Communicator* comm = nullptr;
  GradSyncOptions grad_sync;
  // --checkpoint_write: how worker 0 writes the all-reduced parameters into checkpoints.
  checkpoint::WriteMethod checkpoint_write = checkpoint::WriteMethod::kSstIngest;
  // --device, resolved (launch/device_placement.h): where the dense model computes.
  // Anything but the CPU goes through worker/device_staging.h. Default: the CPU.
  Device device = Device::kCPU;
  // --device=cuda with --sync=allreduce|hybrid and several workers: the workers' NCCL
  // communicator (not owned; worker/device_comm.h), which all-reduces the model's device
  // gradients. Null otherwise; a staged run without it all-reduces through `comm`.
  collective::Communicator* device_comm = nullptr;
  // TEST HOOK (--staging_on_cpu): a CPU run through the staging path, with the model's
  // own copies of the parameters, as a GPU run does. Default: false.
  bool staging_on_cpu = false;
};

// A worker's part of a checkpoint (docs/checkpoints.md): the next step and the data
// cursor; the model's values and optimizer state live on the servers (under
// --sync=allreduce|hybrid the dense ones on the workers: worker/replica_state.h). A
// resumed worker gets both back through the Welcome (Client::resume()).
struct TrainerState {
  int64_t next_step = 0;
  data::DataCursor cursor;
};

// InvalidArgument unless the place has a client and a worker index inside [0, W).
// `who` names the loop ("Trainer", "SparseTrainer").
Status CheckPlace(const TrainerPlace& place, const char* who);

// --request_timeout_s as a clock duration.
Clock::duration RequestTimeout(double seconds);

// Waits for every handle (even after a failure, so no reply can land in freed memory),
// clears the list and returns the first error with `what` as context.
Status WaitAll(std::vector<Handle>* handles, Clock::duration timeout, const char* what);

double SecondsSince(Clock::time_point t);

// Adds the time from construction to destruction to *sink and, with --timeline, records
// it as the span `span` (a string literal; null records no span).
class PhaseTimer {
 public:
  explicit PhaseTimer(double* sink, const char* span = nullptr, const char* cat = "worker")
      : sink_(sink), start_(Clock::now()), span_(span, cat) {}
  ~PhaseTimer() { *sink_ += SecondsSince(start_); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  double* const sink_;  // a field of the loop's summary, which outlives the timer
  Clock::time_point start_;
  timeline::Span span_;
};

// Worker 0's progress: losses and samples since the last progress line.
class ProgressWindow {
 public:
  void Start() { loop_start_ = start_ = Clock::now(); }
  // Adds one step; returns the job's samples/s over the window (this worker's samples
  // times num_workers).
  double Add(double loss, int64_t samples, int num_workers);
  double mean_loss() const { return steps_ > 0 ? loss_ / static_cast<double>(steps_) : 0; }
  // "step 40/100  epoch 0.62  loss 0.4213  5400 samples/s  ETA 3s", logged, then the
  // window restarts.
  void Log(int64_t step, int64_t planned_steps, int64_t steps_per_epoch, int num_workers);

 private:
  double loss_ = 0;
  int64_t steps_ = 0;
  int64_t samples_ = 0;
  Clock::time_point start_;
  Clock::time_point loop_start_;
};

// The worker's side of the two-phase commit: at each step boundary, remembers the state
// there and answers a pending prepare with the state at the prepared step (the prepare
// may arrive after this worker passed it, hence the record of the last 64 boundaries).
// Worker 0 also writes committed checkpoints' byte counts to the metrics file and, when
// it holds all-reduced parameters, writes them into the checkpoint at the prepared
// boundary itself (worker/replica_state.h): a prepare that arrives after that boundary
// is answered not ok, and the coordinator picks a later step.
class CheckpointAnswerer {
 public:
  // `metrics` may be null (workers other than 0); `replica` is worker 0's GradSync under
  // --sync=allreduce|hybrid, else null. None is owned.
  CheckpointAnswerer(Client* client, int worker_index, MetricsWriter* metrics, GradSync* replica = nullptr,
                     checkpoint::WriteMethod method = checkpoint::WriteMethod::kSstIngest)
      : client_(client), worker_index_(worker_index), metrics_(metrics), replica_(replica), method_(method) {}
  void AtBoundary(int64_t step, const data::DataCursor& cursor);

 private:
  // Worker 0's dense state at the boundary of `step`, written into the prepared directory.
  Result<WrittenPart> WriteReplicaPart(int64_t step);

  Client* const client_;
  const int worker_index_;
  MetricsWriter* const metrics_;
  GradSync* const replica_;
  const checkpoint::WriteMethod method_;
  std::deque<std::pair<int64_t, data::DataCursor>> boundaries_;
  uint64_t bytes_seen_ = 0;
};

// Creates the loop's CheckpointAnswerer (worker 0 of --sync=allreduce|hybrid writes the
// all-reduced parameters) and, on resume, restores the all-reduced parameters' values and
// optimizer state from the checkpoint (worker/replica_state.h). Call after the initial
// pull. `metrics` may be null.
Status SetupCheckpoints(const TrainerPlace& place, const ResumePoint& resume, MetricsWriter* metrics, GradSync& sync,
                        std::unique_ptr<CheckpointAnswerer>* answerer);

}  // namespace tessera::worker
