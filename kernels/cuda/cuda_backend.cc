// The CUDA backend table, device discovery and host<->device copies.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels {
namespace gpu {

Status Copy(void* dst, const void* src, size_t bytes) {
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
  return Status::OK();
}

Result<Buffer> Allocate(size_t bytes) {
  if (bytes == 0) return Buffer::Wrap(nullptr, 0, Device::kCUDA, nullptr);
  void* p = nullptr;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
  // cudaFree's error is dropped: a release callback has no caller to report to.
  return Buffer::Wrap(p, bytes, Device::kCUDA, [p] { cudaFree(p); });
}

}  // namespace gpu

namespace internal {

const Backend& CudaBackend() {
  static const Backend kTable = {
      .name = "cuda",
      .fill = gpu::Fill,
      .copy = gpu::Copy,
      .axpy = gpu::Axpy,
      .scale = gpu::Scale,
      .add = gpu::Add,
      .sum = gpu::Sum,
      .sum_squares = gpu::SumSquares,
      .optimizer = gpu::Optimizer,
      .gemm = gpu::Gemm,
      .bias_act_forward = gpu::BiasActForward,
      .bias_act_backward = gpu::BiasActBackward,
      .indices_in_range = gpu::IndicesInRange,
      .softmax_xent = gpu::SoftmaxXent,
      .argmax = gpu::ArgMax,
      .count_correct = gpu::CountCorrect,
      .sigmoid_bce = gpu::SigmoidBce,
      .gather = gpu::Gather,
      .scatter_add = gpu::ScatterAdd,
      .segment_sum = gpu::SegmentSum,
      .grouped_row_sum = gpu::GroupedRowSum,
      .offsets_valid = gpu::OffsetsValid,
      .pairwise_dot = gpu::PairwiseDot,
      .pairwise_dot_backward = gpu::PairwiseDotBackward,
      .allocate = gpu::Allocate,
      .cast = gpu::Cast,
  };
  return kTable;
}

Status CudaMemcpy(void* dst, const void* src, size_t bytes, int kind) {
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMemcpy(dst, src, bytes, static_cast<cudaMemcpyKind>(kind)));
  // cudaMemcpy does not wait for a device-to-device copy; ops.h promises the copy is done
  // on return (the NCCL stream, which does not wait for this one, may read dst next).
  if (kind == cudaMemcpyDeviceToDevice) TESSERA_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(cudaStreamLegacy));
  return Status::OK();
}

bool CudaDevicePresent() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    // e.g. cudaErrorInsufficientDriver or cudaErrorNoDevice: both mean "no GPU" here.
    // Clear the error so it is not reported by an unrelated later call.
    cudaGetLastError();
    return false;
  }
  return count > 0;
}

}  // namespace internal
}  // namespace tessera::kernels
