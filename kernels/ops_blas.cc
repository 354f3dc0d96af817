// Memory, BLAS-1, reductions, casts and GEMM: validation, then the backend table.
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/validate.h"

namespace tessera::kernels {

using internal::Backend;
using internal::BackendFor;
using internal::CheckMatrix;
using internal::CheckSameDevice;
using internal::CheckSameNumel;
using internal::CheckView;
using internal::Describe;
using internal::Invalid;

namespace {
constexpr auto kF32 = DType::kF32;
}  // namespace

Status CopyTensor(TensorView src, TensorView dst) {
  constexpr std::string_view kOp = "CopyTensor";
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "src", src, {src.dtype}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dst", dst, {src.dtype}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "src", src, "dst", dst));
  const size_t bytes = src.nbytes();
  if (bytes == 0) return Status::OK();
  if (src.device == Device::kCPU && dst.device == Device::kCPU) {
    std::memmove(dst.data, src.data, bytes);
    return Status::OK();
  }
#if TESSERA_HAVE_CUDA
  // cudaMemcpyKind: 1 host->device, 2 device->host, 3 device->device.
  const int kind = src.device == Device::kCPU ? 1 : (dst.device == Device::kCPU ? 2 : 3);
  return internal::CudaMemcpy(dst.data, src.data, bytes, kind);
#else
  return BackendFor(Device::kCUDA).status();
#endif
}

Status Fill(TensorView x, float value) {
  TESSERA_RETURN_IF_ERROR(CheckView("Fill", "x", x, {kF32}));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(x.device));
  if (x.numel() == 0) return Status::OK();
  return be->fill(x.as<float>(), x.numel(), value);
}

Status Axpy(float a, TensorView x, TensorView y) {
  constexpr std::string_view kOp = "Axpy";
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "x", x, {DType::kF32, DType::kF16, DType::kBF16}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "y", y, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "x", x, "y", y));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&x, &y}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (y.numel() == 0) return Status::OK();
  return be->axpy(a, x.data, x.dtype, y.as<float>(), y.numel());
}

Status Scale(TensorView x, float alpha) {
  TESSERA_RETURN_IF_ERROR(CheckView("Scale", "x", x, {kF32}));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(x.device));
  if (x.numel() == 0) return Status::OK();
  return be->scale(x.as<float>(), x.numel(), alpha);
}

Status Add(TensorView a, TensorView b, TensorView out) {
  constexpr std::string_view kOp = "Add";
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "a", a, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "b", b, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "out", out, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "a", a, "b", b));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "a", a, "out", out));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&a, &b, &out}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (a.numel() == 0) return Status::OK();
  return be->add(a.as<float>(), b.as<float>(), out.as<float>(), a.numel());
}

Result<double> Sum(TensorView x) {
  TESSERA_RETURN_IF_ERROR(CheckView("Sum", "x", x, {kF32}));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(x.device));
  double s = 0;
  if (x.numel() > 0) TESSERA_RETURN_IF_ERROR(be->sum(x.as<float>(), x.numel(), &s));
  return s;
}

Result<double> L2NormSquared(TensorView x) {
  TESSERA_RETURN_IF_ERROR(CheckView("L2NormSquared", "x", x, {kF32}));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(x.device));
  double s = 0;
  if (x.numel() > 0) TESSERA_RETURN_IF_ERROR(be->sum_squares(x.as<float>(), x.numel(), &s));
  return s;
}

Result<double> ClipByNorm(TensorView x, float clip_norm) {
  if (std::isnan(clip_norm)) return Invalid("ClipByNorm", "clip_norm is NaN");
  TESSERA_ASSIGN_OR_RETURN(const double sq, L2NormSquared(x));
  const double norm = std::sqrt(sq);
  if (clip_norm > 0 && norm > clip_norm) {
    TESSERA_RETURN_IF_ERROR(Scale(x, static_cast<float>(clip_norm / norm)));
  }
  return norm;
}

Status Cast(TensorView src, TensorView dst) {
  constexpr std::string_view kOp = "Cast";
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "src", src, {DType::kF32, DType::kF16, DType::kBF16}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dst", dst, {DType::kF32, DType::kF16, DType::kBF16}));
  if (!internal::IsSupportedCast(src.dtype, dst.dtype)) {
    return Invalid(kOp, "unsupported conversion " + Describe(src) + " -> " + Describe(dst) +
                            " (supported: f32<->f16, f32<->bf16, f32->f32)");
  }
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "src", src, "dst", dst));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&src, &dst}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (src.numel() == 0) return Status::OK();
  return be->cast(src.data, src.dtype, dst.data, dst.dtype, src.numel());
}

Status Gemm(bool trans_a, bool trans_b, float alpha, TensorView a, TensorView b, float beta,
            TensorView c) {
  constexpr std::string_view kOp = "Gemm";
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "a", a, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "b", b, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "c", c, {kF32}));
  const int64_t m = trans_a ? a.shape[1] : a.shape[0];
  const int64_t k = trans_a ? a.shape[0] : a.shape[1];
  const int64_t k_b = trans_b ? b.shape[1] : b.shape[0];
  const int64_t n = trans_b ? b.shape[0] : b.shape[1];
  if (k != k_b) {
    return Invalid(kOp, "inner dimensions differ: op(a) is [" + std::to_string(m) + ", " +
                            std::to_string(k) + "], op(b) is [" + std::to_string(k_b) + ", " +
                            std::to_string(n) + "] (a " + Describe(a) + ", b " + Describe(b) +
                            ")");
  }
  if (c.shape[0] != m || c.shape[1] != n) {
    return Invalid(kOp, "c must be [" + std::to_string(m) + ", " + std::to_string(n) + "], got " +
                            Describe(c));
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&a, &b, &c}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (m == 0 || n == 0) return Status::OK();
  if (k == 0) {  // empty sum: c = beta * c, and beta == 0 must not read c
    return beta == 0.0f ? be->fill(c.as<float>(), m * n, 0.0f)
                        : be->scale(c.as<float>(), m * n, beta);
  }
  return be->gemm(trans_a, trans_b, m, n, k, alpha, a.as<float>(), a.shape[1], b.as<float>(),
                  b.shape[1], beta, c.as<float>(), c.shape[1]);
}

}  // namespace tessera::kernels
