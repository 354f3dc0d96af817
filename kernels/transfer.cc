#include "kernels/transfer.h"

#include <cstring>
#include <string>

#include "kernels/dispatch.h"

#if TESSERA_HAVE_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#endif

namespace tessera::kernels {
namespace {

constexpr size_t kEventRing = 64;

#if !TESSERA_HAVE_CUDA
Status NoCuda() {
  return Status::FailedPrecondition("CUDA memory requested, but tessera_kernels was built without CUDA");
}
#endif

}  // namespace

Result<Tensor> AllocateTensor(Device device, DType dtype, Shape shape) {
  if (device == Device::kCPU) return Tensor::Zeros(dtype, std::move(shape));
#if TESSERA_HAVE_CUDA
  const size_t bytes = static_cast<size_t>(NumElements(shape)) * DTypeSize(dtype);
  TESSERA_ASSIGN_OR_RETURN(const internal::Backend* be, internal::BackendFor(Device::kCUDA));
  TESSERA_ASSIGN_OR_RETURN(Buffer b, be->allocate(bytes));
  if (bytes > 0) TESSERA_CUDA_RETURN_IF_ERROR(cudaMemset(b.data(), 0, bytes));
  return Tensor::FromBuffer(std::move(b), dtype, std::move(shape));
#else
  return NoCuda();
#endif
}

Result<Buffer> AllocatePinned(Device device, size_t bytes) {
  if (device == Device::kCPU) return Buffer::Zeros(bytes);
#if TESSERA_HAVE_CUDA
  if (bytes == 0) return Buffer();
  void* p = nullptr;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
  std::memset(p, 0, bytes);
  // cudaFreeHost's error is dropped: a release callback has no caller to report to.
  return Buffer::Wrap(p, bytes, Device::kCPU, [p] { cudaFreeHost(p); });
#else
  return NoCuda();
#endif
}

Result<std::unique_ptr<CopyQueue>> CopyQueue::Create(Device device) {
  std::unique_ptr<CopyQueue> q(new CopyQueue(device));
  if (device == Device::kCPU) return q;
#if TESSERA_HAVE_CUDA
  cudaStream_t s = nullptr;
  // Non-blocking: the copies do not wait for the kernels on the legacy stream, nor they for
  // the copies (the ordering is this class's fences plus ops.h's synchronous kernels).
  TESSERA_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  q->stream_ = s;
  for (size_t i = 0; i < kEventRing; ++i) {
    cudaEvent_t e = nullptr;
    TESSERA_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    q->events_.push_back(e);
  }
  return q;
#else
  return NoCuda();
#endif
}

CopyQueue::~CopyQueue() {
#if TESSERA_HAVE_CUDA
  // Errors are dropped: a destructor has no caller to report to (the queue's last Wait did).
  if (stream_ != nullptr) cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
#endif
}

Result<CopyQueue::Fence> CopyQueue::Copy(TensorView src, TensorView dst) {
  if (src.dtype != dst.dtype || src.numel() != dst.numel() || (src.numel() > 0 && (!src.data || !dst.data))) {
    return Status::InvalidArgument("CopyQueue::Copy: src " + std::string(DTypeName(src.dtype)) + ShapeToString(src.shape) +
                                   " and dst " + std::string(DTypeName(dst.dtype)) + ShapeToString(dst.shape) +
                                   " must have the same dtype and element count");
  }
  if (src.device != Device::kCPU && dst.device != Device::kCPU) {
    return Status::InvalidArgument("CopyQueue::Copy: one side must be host memory");
  }
  if ((src.device != Device::kCPU && src.device != device_) || (dst.device != Device::kCPU && dst.device != device_)) {
    return Status::InvalidArgument("CopyQueue::Copy: a view is on another device than the queue's");
  }
  const Fence f = next_++;
  const size_t bytes = src.nbytes();
  if (device_ == Device::kCPU) {
    if (bytes > 0) std::memmove(dst.data, src.data, bytes);
    return f;
  }
#if TESSERA_HAVE_CUDA
  auto stream = static_cast<cudaStream_t>(stream_);
  if (bytes > 0) {
    const cudaMemcpyKind kind = src.device == Device::kCPU ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    TESSERA_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data, src.data, bytes, kind, stream));
  }
  TESSERA_CUDA_RETURN_IF_ERROR(cudaEventRecord(static_cast<cudaEvent_t>(events_[f % kEventRing]), stream));
  return f;
#else
  return NoCuda();
#endif
}

Status CopyQueue::Wait(Fence fence) {
  if (device_ == Device::kCPU || fence >= next_) return Status::OK();
#if TESSERA_HAVE_CUDA
  // The fence's event may have been recorded again since; the newest event covers it.
  const Fence which = next_ - fence > kEventRing ? next_ - 1 : fence;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[which % kEventRing])));
  return Status::OK();
#else
  return NoCuda();
#endif
}

Result<bool> CopyQueue::Poll(Fence fence) {
  if (device_ == Device::kCPU || fence >= next_) return true;
#if TESSERA_HAVE_CUDA
  const Fence which = next_ - fence > kEventRing ? next_ - 1 : fence;
  const cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(events_[which % kEventRing]));
  if (err == cudaErrorNotReady) return false;
  TESSERA_CUDA_RETURN_IF_ERROR(err);
  return true;
#else
  return NoCuda();
#endif
}

Status CopyQueue::WaitAll() { return next_ == 0 ? Status::OK() : Wait(next_ - 1); }

}  // namespace tessera::kernels
