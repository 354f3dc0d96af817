// DeviceStaging: the host side of a model that computes on a device (--device=cuda,
// docs/training.md "GPU workers").
//
// The parameter servers, the all-reduce path (GradSync), checkpoints and the params
// digest all work on host memory; the model's parameters, activations and gradients live
// on its device. DeviceStaging keeps one host mirror per model parameter (same spec;
// value and gradient in pinned blocks from kernels::AllocatePinned) and moves data
// between the two on one kernels::CopyQueue:
//   - batches: host batch -> pinned block -> device, asynchronously (StartBatch, then
//     FinishBatch before forward);
//   - gradients, per layer as backward produces them: device -> the mirror's gradient
//     (OnModelGradReady, from the model's gradient-ready hook). The copy of one layer
//     runs while the next layer's backward computes; once it is done (polled at each
//     hook call, waited for after backward), the mirror is handed to the `ready` callback (the trainer pushes it, zero-copy, or marks it
//     ready for its all-reduce bucket);
//   - values: a mirror's value (pulled, or updated by the local optimizer) -> device
//     (ValueToDevice), waited for before the next forward (WaitValues).
// The training loop is then unchanged: it pulls into, pushes from, all-reduces and
// checkpoints the mirrors. Copies are exact, so a run through this path computes
// bitwise what the host path computes; with Device::kCPU (the CPU "device" keeps its own
// copies, and copies happen when enqueued) the path runs in CI and a test compares the
// digests (tests/train/staging_job_test.cc).
//
// Lifetime: a mirror's pinned blocks are Buffers owned here (a holder of a Buffer
// handle keeps one alive past this object). A dense push sends the block zero-copy and
// its Handle completes only after ZeroMQ's free callback released it (worker/client.h);
// the trainer waits for every push Handle, also after a failure, before the next copy
// into the block (the next backward) and before this object goes away.
//
// Timeline spans (--timeline, cat "copy"): "h2d batch" (the start), "h2d batch wait",
// "d2h grad wait", "h2d params" and "h2d params wait", on the training thread.
//
// Thread safety: one thread (the training loop's) calls everything, including the hook.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "kernels/transfer.h"
#include "worker/model/layer.h"

namespace tessera::worker {

class DeviceStaging {
 public:
  // `model_params`: the model's parameters (not owned; they outlive this object), on
  // `device`. `ready` is called with each mirror whose gradient reached the host, in
  // the order the model reported them. Errors: allocation or stream creation.
  static Result<std::unique_ptr<DeviceStaging>> Create(Device device, std::vector<model::Parameter*> model_params,
                                                       std::function<void(model::Parameter* mirror)> ready);

  // Waits for copies still in flight before the pinned blocks and device memory go.
  ~DeviceStaging();
  DeviceStaging(const DeviceStaging&) = delete;
  DeviceStaging& operator=(const DeviceStaging&) = delete;

  Device device() const { return queue_->device(); }
  // The host mirrors, in the model's parameter order. Pointers stay valid for this
  // object's life.
  std::vector<model::Parameter*> mirrors();

  // Starts copying features (f32 [B, D]) and labels (i32 [B]) from host memory to the
  // device, through pinned blocks (the host batch may change once this returns). The
  // trainer starts step s+1's batch while step s waits for its pulls, so the copy
  // overlaps the network. REQUIRES no started batch is pending, and nothing reads the
  // previous batch's device views any more.
  Status StartBatch(TensorView features, TensorView labels);
  // Waits for the started batch and returns its device views (valid until the next
  // StartBatch). FailedPrecondition when none was started.
  Result<std::pair<TensorView, TensorView>> FinishBatch();
  bool batch_pending() const { return batch_pending_; }
  // StartBatch, then FinishBatch.
  Result<std::pair<TensorView, TensorView>> StageBatch(TensorView features, TensorView labels);

  // The gradient-ready hook: enqueues p's gradient device -> host, then hands to `ready`
  // the mirrors whose copies are done, in order, without blocking (a copy still running
  // is handed over by a later call, while backward goes on). Unknown p: InvalidArgument.
  Status OnModelGradReady(model::Parameter* p);
  // Waits for the outstanding gradient copies and hands their mirrors to `ready`. Call
  // after Backward.
  Status FinishGrads();

  // Enqueues mirror i's value host -> device. REQUIRES nothing writes the mirror's value
  // until WaitValues.
  Status ValueToDevice(size_t i);
  // Waits for every value copy enqueued so far.
  Status WaitValues();

 private:
  struct Slot {
    model::Parameter* model = nullptr;  // on the device (not owned)
    model::Parameter mirror;            // host, pinned
  };
  DeviceStaging() = default;
  // Hands over the done copies in order; with `block`, waits for all first.
  Status HandOver(bool block);

  std::unique_ptr<kernels::CopyQueue> queue_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unordered_map<model::Parameter*, size_t> index_;  // model param -> slot
  std::function<void(model::Parameter*)> ready_;
  // Slots whose gradient copy is enqueued, with its fence, in order.
  std::deque<std::pair<size_t, kernels::CopyQueue::Fence>> pending_grads_;
  bool values_pending_ = false;
  Tensor pinned_features_, pinned_labels_;  // grown to the largest batch
  bool batch_pending_ = false;
  kernels::CopyQueue::Fence batch_fence_ = 0;
  TensorView batch_features_, batch_labels_;  // device views of the started batch
  Tensor device_features_, device_labels_;
};

}  // namespace tessera::worker
