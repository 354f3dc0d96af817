// CUDA kernels of the fused bias + activation ops and the losses.
//
// Row-wise ops (softmax cross-entropy, argmax) give one warp per row: lanes stride over
// the columns and combine with shuffles in a fixed butterfly, so results are
// deterministic. Every returned scalar is reduced with DeviceSum (launch.cuh).
#include <algorithm>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/math/activation.h"
#include "kernels/math/loss.h"

namespace tessera::kernels::gpu {

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = kThreads / kWarp;
constexpr unsigned kFullMask = 0xffffffffu;

int RowBlocks(int64_t rows) {
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock,
                                             kMaxBlocks)));
}

#define TESSERA_WARP_ROWS(r, rows)                                                      \
  for (int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; \
       r < (rows); r += static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp)

template <math::Act A>
struct BiasActForwardOp {
  const float* x;
  const float* bias;
  float* y;
  int64_t cols;
  __device__ void operator()(int64_t i) const {
    const float pre = bias != nullptr ? x[i] + bias[i % cols] : x[i];
    y[i] = math::Activate<A>(pre);
  }
};

// Backward: block (32, 8) covers 32 columns; blockIdx.y takes every gridDim.y-th group of
// 8 rows. Each thread writes dpre for its elements and keeps a double column partial;
// the 8 row-lanes are folded in order and one partial per (blockIdx.y, column) is stored.
constexpr int kColTile = 32;
constexpr int kRowLanes = 8;

template <math::Act A>
__global__ void BiasActBackwardKernel(const float* dy, const float* x, const float* bias,
                                      float* dpre, double* partial, int64_t rows, int64_t cols) {
  __shared__ double tile[kRowLanes][kColTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  double acc = 0;
  if (c < cols) {
    const float b = bias != nullptr ? bias[c] : 0.0f;
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * kRowLanes + threadIdx.y; r < rows;
         r += static_cast<int64_t>(gridDim.y) * kRowLanes) {
      const int64_t i = r * cols + c;
      const float d = math::ActivateBackward<A>(dy[i], x[i] + b);
      dpre[i] = d;
      acc += d;
    }
  }
  if (partial == nullptr) return;
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double s = 0;
    for (int k = 0; k < kRowLanes; ++k) s += tile[k][threadIdx.x];
    partial[static_cast<int64_t>(blockIdx.y) * cols + c] = s;
  }
}

__global__ void ColumnFoldKernel(const double* partial, int groups, int64_t cols, float* dbias) {
  TESSERA_GRID_STRIDE(c, cols) {
    double s = 0;
    for (int gy = 0; gy < groups; ++gy) s += partial[static_cast<int64_t>(gy) * cols + c];
    dbias[c] = static_cast<float>(s);
  }
}

template <math::Act A>
Status BiasActBackwardT(const float* dy, const float* x, const float* bias, float* dpre,
                        float* dbias, int64_t rows, int64_t cols) {
  const int64_t col_tiles = (cols + kColTile - 1) / kColTile;
  if (col_tiles > 0x7fffffff) return Status::InvalidArgument("BiasActivationBackward: too many columns");
  // Row groups depend only on `rows`, so the fold order (and result) is fixed per shape.
  const int groups = static_cast<int>(
      std::min<int64_t>((rows + kRowLanes * 16 - 1) / (kRowLanes * 16), 64));
  DeviceScratch scratch;
  if (dbias != nullptr) {
    TESSERA_RETURN_IF_ERROR(
        scratch.Allocate(sizeof(double) * static_cast<size_t>(groups) * static_cast<size_t>(cols)));
  }
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(groups));
  const dim3 block(kColTile, kRowLanes);
  BiasActBackwardKernel<A><<<grid, block>>>(dy, x, bias, dpre, scratch.as<double>(), rows, cols);
  if (dbias != nullptr) {
    ColumnFoldKernel<<<BlocksFor(cols), kThreads>>>(scratch.as<double>(), groups, cols, dbias);
  }
  return FinishLaunch("BiasActivationBackward");
}

template <typename Index>
__global__ void RangeCheckKernel(const Index* idx, int64_t n, int64_t limit, int* bad) {
  TESSERA_GRID_STRIDE(i, n) {
    const Index v = idx[i];
    bool ok;
    if constexpr (static_cast<Index>(-1) < static_cast<Index>(0)) {
      ok = v >= 0 && static_cast<int64_t>(v) < limit;
    } else {
      ok = v < static_cast<uint64_t>(limit);
    }
    if (!ok) *bad = 1;  // benign race: every writer stores 1
  }
}

__device__ inline float WarpMax(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

__device__ inline double WarpSum(double v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__global__ void SoftmaxXentKernel(const float* logits, const int32_t* labels, float* dlogits,
                                  double* row_loss, int64_t rows, int64_t c, float inv_n) {
  const int lane = threadIdx.x % kWarp;
  TESSERA_WARP_ROWS(r, rows) {
    const float* x = logits + r * c;
    float m = -INFINITY;
    for (int64_t j = lane; j < c; j += kWarp) m = fmaxf(m, x[j]);
    const float row_max = WarpMax(m);
    double s = 0;
    for (int64_t j = lane; j < c; j += kWarp) s += math::SoftmaxExp(x[j], row_max);
    const double sum_exp = WarpSum(s);
    const int32_t label = labels[r];
    const float x_label = x[label];
    if (lane == 0) {
      row_loss[r] = math::SoftmaxXentRowLoss(x_label, row_max, static_cast<float>(sum_exp));
    }
    if (dlogits != nullptr) {
      __syncwarp();  // every lane has read x[label] before any lane overwrites it (aliasing)
      const float inv_sum = static_cast<float>(1.0 / sum_exp);
      float* d = dlogits + r * c;
      for (int64_t j = lane; j < c; j += kWarp) {
        d[j] = math::SoftmaxXentGrad(x[j], row_max, inv_sum, j == label, inv_n);
      }
    }
  }
}

struct DoubleTerm {
  const double* v;
  __device__ double operator()(int64_t i) const { return v[i]; }
};

__global__ void ArgMaxKernel(const float* logits, int64_t rows, int64_t c, int32_t* out) {
  const int lane = threadIdx.x % kWarp;
  TESSERA_WARP_ROWS(r, rows) {
    const float* x = logits + r * c;
    float best = -INFINITY;
    int64_t best_j = -1;
    for (int64_t j = lane; j < c; j += kWarp) {
      if (best_j < 0 || x[j] > best) {
        best = x[j];
        best_j = j;
      }
    }
    // Butterfly: prefer the larger value, then the smaller index (first maximum).
    for (int o = kWarp / 2; o > 0; o /= 2) {
      const float ob = __shfl_xor_sync(kFullMask, best, o);
      const int64_t oj = __shfl_xor_sync(kFullMask, best_j, o);
      const bool take = oj >= 0 && (best_j < 0 || ob > best || (ob == best && oj < best_j));
      if (take) {
        best = ob;
        best_j = oj;
      }
    }
    if (lane == 0) out[r] = static_cast<int32_t>(best_j < 0 ? 0 : best_j);
  }
}

struct CorrectTerm {
  const int32_t* pred;
  const int32_t* labels;
  __device__ double operator()(int64_t i) const { return pred[i] == labels[i] ? 1.0 : 0.0; }
};

struct BceLossTerm {
  const float* x;
  const float* y;
  __device__ double operator()(int64_t i) const {
    return static_cast<double>(math::SigmoidBceLoss(x[i], y[i]));
  }
};

struct BceGradOp {
  const float* x;
  const float* y;
  float* dx;
  float inv_n;
  __device__ void operator()(int64_t i) const { dx[i] = math::SigmoidBceGrad(x[i], y[i], inv_n); }
};

}  // namespace

Status BiasActForward(math::Act act, const float* x, const float* bias, float* y, int64_t rows,
                      int64_t cols) {
  const int64_t n = rows * cols;
  switch (act) {
    case math::Act::kIdentity:
      return LaunchElementwise(n, BiasActForwardOp<math::Act::kIdentity>{x, bias, y, cols},
                               "BiasActivationForward");
    case math::Act::kRelu:
      return LaunchElementwise(n, BiasActForwardOp<math::Act::kRelu>{x, bias, y, cols},
                               "BiasActivationForward");
    case math::Act::kGelu:
      return LaunchElementwise(n, BiasActForwardOp<math::Act::kGelu>{x, bias, y, cols},
                               "BiasActivationForward");
  }
  return Status::Internal("cuda BiasActForward: unknown activation");
}

Status BiasActBackward(math::Act act, const float* dy, const float* x, const float* bias,
                       float* dpre, float* dbias, int64_t rows, int64_t cols) {
  switch (act) {
    case math::Act::kIdentity:
      return BiasActBackwardT<math::Act::kIdentity>(dy, x, bias, dpre, dbias, rows, cols);
    case math::Act::kRelu:
      return BiasActBackwardT<math::Act::kRelu>(dy, x, bias, dpre, dbias, rows, cols);
    case math::Act::kGelu:
      return BiasActBackwardT<math::Act::kGelu>(dy, x, bias, dpre, dbias, rows, cols);
  }
  return Status::Internal("cuda BiasActBackward: unknown activation");
}

Status IndicesInRange(const void* idx, DType idx_dtype, int64_t n, int64_t limit, bool* ok_host) {
  DeviceScratch flag;
  TESSERA_RETURN_IF_ERROR(flag.Allocate(sizeof(int)));
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMemset(flag.as<int>(), 0, sizeof(int)));
  switch (idx_dtype) {
    case DType::kI32:
      RangeCheckKernel<<<BlocksFor(n), kThreads>>>(static_cast<const int32_t*>(idx), n, limit,
                                                   flag.as<int>());
      break;
    case DType::kI64:
      RangeCheckKernel<<<BlocksFor(n), kThreads>>>(static_cast<const int64_t*>(idx), n, limit,
                                                   flag.as<int>());
      break;
    case DType::kU64:
      RangeCheckKernel<<<BlocksFor(n), kThreads>>>(static_cast<const uint64_t*>(idx), n, limit,
                                                   flag.as<int>());
      break;
    default:
      return Status::Internal("cuda IndicesInRange: unsupported index dtype");
  }
  TESSERA_RETURN_IF_ERROR(FinishLaunch("index range check"));
  int bad = 0;
  TESSERA_CUDA_RETURN_IF_ERROR(cudaMemcpy(&bad, flag.as<int>(), sizeof(int), cudaMemcpyDeviceToHost));
  *ok_host = bad == 0;
  return Status::OK();
}

Status SoftmaxXent(const float* logits, const int32_t* labels, float* dlogits, int64_t n,
                   int64_t c, double* loss_host) {
  DeviceScratch row_loss;
  TESSERA_RETURN_IF_ERROR(row_loss.Allocate(sizeof(double) * static_cast<size_t>(n)));
  const float inv_n = static_cast<float>(1.0 / static_cast<double>(n));
  SoftmaxXentKernel<<<RowBlocks(n), kThreads>>>(logits, labels, dlogits, row_loss.as<double>(),
                                                n, c, inv_n);
  TESSERA_RETURN_IF_ERROR(FinishLaunch("SoftmaxCrossEntropy"));
  double total = 0;
  TESSERA_RETURN_IF_ERROR(DeviceSum(n, DoubleTerm{row_loss.as<double>()}, &total,
                                    "SoftmaxCrossEntropy"));
  *loss_host = total / static_cast<double>(n);
  return Status::OK();
}

Status ArgMax(const float* logits, int64_t n, int64_t c, int32_t* out) {
  ArgMaxKernel<<<RowBlocks(n), kThreads>>>(logits, n, c, out);
  return FinishLaunch("ArgMax");
}

Status CountCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t c,
                    int64_t* count_host) {
  DeviceScratch pred;
  TESSERA_RETURN_IF_ERROR(pred.Allocate(sizeof(int32_t) * static_cast<size_t>(n)));
  TESSERA_RETURN_IF_ERROR(ArgMax(logits, n, c, pred.as<int32_t>()));
  double count = 0;
  TESSERA_RETURN_IF_ERROR(DeviceSum(n, CorrectTerm{pred.as<int32_t>(), labels}, &count,
                                    "CountCorrect"));
  *count_host = static_cast<int64_t>(count);
  return Status::OK();
}

Status SigmoidBce(const float* logits, const float* labels, float* dlogits, int64_t n,
                  double* loss_host) {
  double total = 0;  // loss before gradient: dlogits may alias logits
  TESSERA_RETURN_IF_ERROR(DeviceSum(n, BceLossTerm{logits, labels}, &total,
                                    "SigmoidBinaryCrossEntropy"));
  if (dlogits != nullptr) {
    const float inv_n = static_cast<float>(1.0 / static_cast<double>(n));
    TESSERA_RETURN_IF_ERROR(LaunchElementwise(n, BceGradOp{logits, labels, dlogits, inv_n},
                                              "SigmoidBinaryCrossEntropy"));
  }
  *loss_host = total / static_cast<double>(n);
  return Status::OK();
}

}  // namespace tessera::kernels::gpu
