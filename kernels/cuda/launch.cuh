// Launch shapes and the deterministic reduction shared by the CUDA kernels.
//
// Reductions: each block folds a grid-stride slice in double, reduces in shared memory
// with a fixed tree, writes one partial; a single block then folds the partials in a
// fixed tree. The grid size depends only on n, never on the device, so the result for a
// given input is the same on every run and every GPU.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"

namespace tessera::kernels::gpu {

inline constexpr int kThreads = 256;
inline constexpr int64_t kMaxBlocks = 4096;

inline int BlocksFor(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads,
                                                                  kMaxBlocks)));
}

#define TESSERA_GRID_STRIDE(i, n)                                                   \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename F>
__global__ void ElementwiseKernel(int64_t n, F f) {
  TESSERA_GRID_STRIDE(i, n) { f(i); }
}

// f(i) for i in [0, n) on the legacy default stream; waits for completion.
template <typename F>
Status LaunchElementwise(int64_t n, F f, const char* what) {
  ElementwiseKernel<<<BlocksFor(n), kThreads>>>(n, f);
  return FinishLaunch(what);
}

// Sum over the block (blockDim.x == kThreads) in a fixed order; result valid in thread 0.
__device__ inline double BlockSum(double v) {
  __shared__ double shared[kThreads];
  __syncthreads();  // a previous BlockSum in the same kernel may still be reading shared[0]
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

template <typename Term>
__global__ void PartialSumKernel(int64_t n, Term term, double* partial) {
  double acc = 0;
  TESSERA_GRID_STRIDE(i, n) { acc += term(i); }
  const double s = BlockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <int kUnused = 0>  // a template so that every .cu may instantiate it without ODR clashes
__global__ void FinalSumKernel(const double* partial, int count, double* out) {
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  const double s = BlockSum(acc);
  if (threadIdx.x == 0) *out = s;
}

// sum_{i<n} term(i) in double, deterministic; *out is host memory. n > 0.
template <typename Term>
Status DeviceSum(int64_t n, Term term, double* out, const char* what) {
  const int blocks = BlocksFor(n);
  DeviceScratch scratch;
  TESSERA_RETURN_IF_ERROR(scratch.Allocate(sizeof(double) * (static_cast<size_t>(blocks) + 1)));
  double* partial = scratch.as<double>();
  PartialSumKernel<<<blocks, kThreads>>>(n, term, partial);
  FinalSumKernel<><<<1, kThreads>>>(partial, blocks, partial + blocks);
  TESSERA_RETURN_IF_ERROR(FinishLaunch(what));
  TESSERA_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(out, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost));
  return Status::OK();
}

}  // namespace tessera::kernels::gpu
