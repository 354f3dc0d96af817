// CUDA kernels for memory, BLAS-1, reductions and casts, over kernels/math/.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/math/cast.h"
#include "kernels/math/elementwise.h"

namespace tessera::kernels::gpu {

namespace {

struct FillOp {
  float* x;
  float value;
  __device__ void operator()(int64_t i) const { x[i] = value; }
};

template <DType T>
__device__ inline float Widen(const void* p, int64_t i) {
  if constexpr (T == DType::kF32) return static_cast<const float*>(p)[i];
  if constexpr (T == DType::kF16) return math::F16ToF32(static_cast<const uint16_t*>(p)[i]);
  if constexpr (T == DType::kBF16) return math::BF16ToF32(static_cast<const uint16_t*>(p)[i]);
  return 0.0f;
}

template <DType T>
struct AxpyOp {
  float a;
  const void* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = math::Axpy(a, Widen<T>(x, i), y[i]); }
};

struct ScaleOp {
  float* x;
  float alpha;
  __device__ void operator()(int64_t i) const { x[i] = math::Scale(alpha, x[i]); }
};

struct AddOp {
  const float* a;
  const float* b;
  float* out;
  __device__ void operator()(int64_t i) const { out[i] = math::Add(a[i], b[i]); }
};

struct ValueTerm {
  const float* x;
  __device__ double operator()(int64_t i) const { return static_cast<double>(x[i]); }
};

struct SquareTerm {
  const float* x;
  __device__ double operator()(int64_t i) const { return math::SquareTerm(x[i]); }
};

template <bool kToF16>
struct NarrowOp {
  const float* src;
  uint16_t* dst;
  __device__ void operator()(int64_t i) const {
    dst[i] = kToF16 ? math::F32ToF16(src[i]) : math::F32ToBF16(src[i]);
  }
};

template <DType T>
struct WidenOp {
  const void* src;
  float* dst;
  __device__ void operator()(int64_t i) const { dst[i] = Widen<T>(src, i); }
};

}  // namespace

Status Fill(float* x, int64_t n, float value) {
  return LaunchElementwise(n, FillOp{x, value}, "Fill");
}

Status Axpy(float a, const void* x, DType x_dtype, float* y, int64_t n) {
  switch (x_dtype) {
    case DType::kF32: return LaunchElementwise(n, AxpyOp<DType::kF32>{a, x, y}, "Axpy");
    case DType::kF16: return LaunchElementwise(n, AxpyOp<DType::kF16>{a, x, y}, "Axpy");
    case DType::kBF16: return LaunchElementwise(n, AxpyOp<DType::kBF16>{a, x, y}, "Axpy");
    default: return Status::Internal("cuda Axpy: unsupported x dtype reached the backend");
  }
}

Status Scale(float* x, int64_t n, float alpha) {
  return LaunchElementwise(n, ScaleOp{x, alpha}, "Scale");
}

Status Add(const float* a, const float* b, float* out, int64_t n) {
  return LaunchElementwise(n, AddOp{a, b, out}, "Add");
}

Status Sum(const float* x, int64_t n, double* out_host) {
  return DeviceSum(n, ValueTerm{x}, out_host, "Sum");
}

Status SumSquares(const float* x, int64_t n, double* out_host) {
  return DeviceSum(n, SquareTerm{x}, out_host, "L2NormSquared");
}

Status Cast(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (src_dtype == DType::kF32 && dst_dtype == DType::kF32) {
    return Copy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
  if (src_dtype == DType::kF32) {
    const float* s = static_cast<const float*>(src);
    uint16_t* d = static_cast<uint16_t*>(dst);
    return dst_dtype == DType::kF16 ? LaunchElementwise(n, NarrowOp<true>{s, d}, "Cast")
                                    : LaunchElementwise(n, NarrowOp<false>{s, d}, "Cast");
  }
  float* d = static_cast<float*>(dst);
  return src_dtype == DType::kF16 ? LaunchElementwise(n, WidenOp<DType::kF16>{src, d}, "Cast")
                                  : LaunchElementwise(n, WidenOp<DType::kBF16>{src, d}, "Cast");
}

}  // namespace tessera::kernels::gpu
