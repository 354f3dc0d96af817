// Bucketer: tensor fusion for gradient all-reduce (Horovod's fusion buffer, PyTorch DDP's
// buckets). The tensors are laid out, in the order backward produces them, into buckets
// of at most bucket_bytes (a tensor larger than that gets a bucket of its own); as soon
// as every tensor of a bucket is ready, the bucket is copied into one flat buffer and
// all-reduced as ONE operation on the communicator, while backward goes on with the
// earlier layers. Finish waits for every bucket and copies the results back.
//
// bucket_bytes == 0 disables fusion: every tensor is all-reduced on its own, in place.
//
// Thread safety: one thread (the training loop) calls MarkReady/Finish; the communicator's
// thread reads and writes a bucket's flat buffer while its all-reduce is in flight, and
// the Bucketer touches neither the buffer nor the tensors of a bucket in flight.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "collective/communicator.h"

namespace tessera::collective {

struct BucketOptions {
  // Fusion buffer size (--bucket_mb). 0: one all-reduce per tensor. Default: 25 MiB.
  size_t bucket_bytes = size_t{25} << 20;
  ReduceOp reduce = ReduceOp::kMean;
  WireFormat wire = WireFormat::kNative;
};

class Bucketer {
 public:
  // `tensors`: f32 tensors, all in host memory or all on one CUDA device (for the NCCL
  // backend; the flat buffers are then device memory and the copies device to device), in
  // the order MarkReady will usually be called. They must keep their address for the
  // Bucketer's life. `comm` is not owned and outlives it.
  static Result<std::unique_ptr<Bucketer>> Create(Communicator* comm, std::vector<TensorView> tensors,
                                                  const BucketOptions& options);

  // Tensor i holds its final value for this step: it joins its bucket, and a full bucket
  // starts its all-reduce. Calling it twice for a tensor in one step is an error
  // (FailedPrecondition), as is an index out of range.
  Status MarkReady(size_t i);

  // Marks every tensor not yet ready (a model without a gradient-ready hook), waits for
  // every bucket and writes the reduced values back into the tensors. Waits in slices of
  // at most 100 ms; between slices, `should_stop` (when given) may end the wait with
  // kAborted (the job is stopping). The first error wins; the Bucketer is then ready for
  // the next step only if every bucket completed.
  Status Finish(Duration timeout, const std::function<bool()>& should_stop = {});

  // Gradients as bucket views (PyTorch DDP's gradient_as_bucket_view): a tensor that
  // shares tensor i's window of its bucket's flat buffer (it keeps the buffer alive). From
  // then on the Bucketer treats that window as tensor i, so MarkReady and Finish copy
  // nothing for it; the caller must write tensor i's values there (e.g. make it the
  // parameter's gradient). FailedPrecondition for a tensor alone in its bucket (it is
  // already reduced in place) and while a step is in progress.
  Result<Tensor> AdoptBucketMemory(size_t i);
  bool fused(size_t i) const { return buckets_[slots_[i].bucket].members.size() > 1; }

  size_t num_buckets() const { return buckets_.size(); }
  // Index of the bucket tensor i belongs to.
  size_t bucket_of(size_t i) const { return slots_[i].bucket; }
  // All-reduces started since creation (for tests and metrics).
  int64_t reductions() const { return reductions_; }

 private:
  struct Slot {
    size_t bucket = 0;
    size_t offset = 0;  // elements into the bucket's flat buffer
    bool ready = false;
  };
  struct Bucket {
    std::vector<size_t> members;
    size_t numel = 0;
    size_t ready = 0;
    Tensor flat;  // f32 [numel]; empty for a single-tensor bucket, reduced in place
    CollHandle handle;
    bool issued = false;
  };

  Bucketer(Communicator* comm, std::vector<TensorView> tensors, const BucketOptions& options, Device device)
      : comm_(comm), tensors_(std::move(tensors)), options_(options), device_(device) {}
  void Issue(Bucket& b);
  // n floats within device_'s memory (kernels::CopyTensor: a CUDA error is its Status).
  Status CopyF32(float* dst, const float* src, int64_t n) const;

  Communicator* const comm_;
  std::vector<TensorView> tensors_;  // AdoptBucketMemory repoints entries into the buckets
  const BucketOptions options_;
  const Device device_;  // where every tensor and flat buffer lives
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  int64_t reductions_ = 0;
};

}  // namespace tessera::collective
