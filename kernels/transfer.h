// Memory placement and asynchronous host <-> device copies for the worker's staging path
// (worker/param_staging.h): device tensors, page-locked ("pinned") host blocks, and a
// copy queue whose copies overlap the compute the kernels run.
//
// Every function takes the Device it works for. Device::kCPU is a real backend, not a
// stand-in: device memory and pinned blocks are ordinary 64-byte-aligned host memory and
// a copy happens when it is enqueued, so CI runs the staging path's code on CPUs.
// Device::kCUDA: cudaMalloc, cudaHostAlloc (the DMA engine reads and writes pinned memory
// without a bounce buffer, which is what lets cudaMemcpyAsync run asynchronously), and
// one non-blocking stream per CopyQueue. Kernels run on the legacy default stream and
// return after their work finished (kernels/ops.h), so a copy enqueued after a kernel
// returned sees its results, and a kernel started after Wait sees the copy's.
//
// Thread safety: the allocation functions may be called from any thread. A CopyQueue is
// used by one thread at a time (the training loop's).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace tessera::kernels {

// A zero-filled f32/i32/... tensor in `device`'s memory; the Buffer frees it when its
// last reference dies. FailedPrecondition for kCUDA in a build without CUDA.
Result<Tensor> AllocateTensor(Device device, DType dtype, Shape shape);

// Host memory `bytes` long that `device` copies to and from asynchronously (pinned for
// kCUDA, freed with cudaFreeHost; plain host memory for kCPU). The Buffer's device is
// kCPU either way: the host reads and writes it, and it can back a zero-copy send.
Result<Buffer> AllocatePinned(Device device, size_t bytes);

// A stream of copies, each between host memory and `device` memory (either direction),
// executed in the order enqueued.
class CopyQueue {
 public:
  // A fence: Wait(f) returns once the copy that returned f, and every copy before it, is done.
  using Fence = uint64_t;

  static Result<std::unique_ptr<CopyQueue>> Create(Device device);
  ~CopyQueue();
  CopyQueue(const CopyQueue&) = delete;
  CopyQueue& operator=(const CopyQueue&) = delete;

  Device device() const { return device_; }

  // Enqueues dst <- src (same dtype and numel; one side on the host, which should be
  // AllocatePinned memory for the copy to be asynchronous under kCUDA). Neither side may
  // be written, nor dst read, until Wait(returned fence). InvalidArgument on mismatched
  // views; a CUDA error otherwise.
  Result<Fence> Copy(TensorView src, TensorView dst);
  // Blocks until the fenced copy is done. Returns the error of a failed copy (kInternal).
  Status Wait(Fence fence);
  // Blocks until every enqueued copy is done.
  Status WaitAll();
  // Without blocking: true when the fenced copy is done. The error of a failed copy.
  Result<bool> Poll(Fence fence);

 private:
  explicit CopyQueue(Device device) : device_(device) {}

  const Device device_;
  Fence next_ = 0;  // fence of the next copy
  // kCUDA: the stream and a ring of events, one recorded after each copy. The stream is
  // in order, so when a fence's event has been reused, waiting for the newest one covers it.
  void* stream_ = nullptr;
  std::vector<void*> events_;
};

}  // namespace tessera::kernels
