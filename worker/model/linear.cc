#include "worker/model/linear.h"

#include <cmath>
#include <utility>

#include "kernels/transfer.h"

namespace tessera::model {
namespace {

Status CheckMatrix(const char* what, const std::string& layer, const TensorView& v, int64_t rows,
                   int64_t cols, Device device) {
  if (v.device != device) {
    return Status::InvalidArgument(layer + ": " + what + " is in " +
                                   (v.device == Device::kCPU ? "host" : "device") + " memory, the layer on " +
                                   (device == Device::kCPU ? "the CPU" : "the GPU"));
  }
  if (v.dtype != DType::kF32 || v.shape.size() != 2 || v.shape[1] != cols ||
      (rows >= 0 && v.shape[0] != rows) || (v.numel() > 0 && v.data == nullptr)) {
    return Status::InvalidArgument(layer + ": " + what + " must be f32 [" +
                                   (rows >= 0 ? std::to_string(rows) : std::string("B")) + ", " +
                                   std::to_string(cols) + "], got " +
                                   std::string(DTypeName(v.dtype)) + ShapeToString(v.shape));
  }
  return Status::OK();
}

Parameter MakeParam(std::string name, Shape shape, InitKind init, float scale,
                    const LinearOptions& options) {
  Parameter p;
  p.spec.name = std::move(name);
  p.spec.kind = ParamKind::kDense;
  p.spec.dtype = DType::kF32;
  p.spec.shape = shape;
  p.spec.init = init;
  p.spec.init_scale = scale;
  p.spec.seed = options.seed;
  p.spec.optimizer = options.optimizer;
  return p;
}

}  // namespace

float DefaultWeightInitScale(Activation act, int64_t fan_in, int64_t fan_out) {
  if (act == Activation::kIdentity) {
    return static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
  }
  return static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in)));
}

Linear::Linear(std::string name, int64_t in, int64_t out, Activation act,
               const LinearOptions& options)
    : name_(std::move(name)),
      in_(in),
      out_(out),
      act_(act),
      device_(options.device),
      weight_(MakeParam(name_ + ".weight", {in, out}, InitKind::kUniform,
                        DefaultWeightInitScale(act, in, out), options)),
      bias_(MakeParam(name_ + ".bias", {out}, InitKind::kZeros, 0.0f, options)) {}

Result<std::unique_ptr<Linear>> Linear::Create(std::string name, int64_t in, int64_t out,
                                               Activation act, const LinearOptions& options) {
  if (name.empty()) return Status::InvalidArgument("Linear layer needs a name");
  if (in < 1 || out < 1) {
    return Status::InvalidArgument("Linear " + name + ": sizes must be >= 1, got in " +
                                   std::to_string(in) + ", out " + std::to_string(out));
  }
  std::unique_ptr<Linear> layer(new Linear(std::move(name), in, out, act, options));
  for (Parameter* p : layer->parameters()) {
    TESSERA_ASSIGN_OR_RETURN(p->value, kernels::AllocateTensor(options.device, DType::kF32, p->spec.shape));
    TESSERA_ASSIGN_OR_RETURN(p->grad, kernels::AllocateTensor(options.device, DType::kF32, p->spec.shape));
  }
  return layer;
}

Result<TensorView> Linear::Rows(Tensor* t, int64_t rows, int64_t cols) {
  if (t->numel() < rows * cols) {
    TESSERA_ASSIGN_OR_RETURN(*t, kernels::AllocateTensor(device_, DType::kF32, {rows, cols}));
  }
  return TensorView{t->data(), DType::kF32, {rows, cols}, device_};
}

Result<TensorView> Linear::Forward(TensorView x) {
  TESSERA_RETURN_IF_ERROR(CheckMatrix("input", name_, x, -1, in_, device_));
  const int64_t rows = x.shape[0];
  TESSERA_ASSIGN_OR_RETURN(const TensorView pre, Rows(&pre_, rows, out_));
  TESSERA_ASSIGN_OR_RETURN(const TensorView y, Rows(&y_, rows, out_));
  TESSERA_RETURN_IF_ERROR_CTX(kernels::Gemm(false, false, 1.0f, x, weight_.value.view(), 0.0f, pre),
                              name_ + " forward");
  TESSERA_RETURN_IF_ERROR_CTX(kernels::BiasActivationForward(act_, pre, bias_.value.view(), y),
                              name_ + " forward");
  x_ = std::move(x);
  rows_ = rows;
  return y;
}

Result<TensorView> Linear::Backward(TensorView dy, bool want_input_grad) {
  if (rows_ < 0) return Status::FailedPrecondition(name_ + ": Backward before Forward");
  TESSERA_RETURN_IF_ERROR(CheckMatrix("output gradient", name_, dy, rows_, out_, device_));
  const TensorView pre{pre_.data(), DType::kF32, {rows_, out_}, device_};
  TESSERA_ASSIGN_OR_RETURN(const TensorView dpre, Rows(&dpre_, rows_, out_));
  // dpre = dy * act'(pre + b); db = column sums of dpre.
  TESSERA_RETURN_IF_ERROR_CTX(
      kernels::BiasActivationBackward(act_, dy, pre, bias_.value.view(), dpre, bias_.grad.view()),
      name_ + " backward");
  // dW = x^T @ dpre  ([in, B] @ [B, out]).
  TESSERA_RETURN_IF_ERROR_CTX(kernels::Gemm(true, false, 1.0f, x_, dpre, 0.0f, weight_.grad.view()),
                              name_ + " backward");
  if (!want_input_grad) return TensorView{};
  // dx = dpre @ W^T  ([B, out] @ [out, in]).
  TESSERA_ASSIGN_OR_RETURN(const TensorView dx, Rows(&dx_, rows_, in_));
  TESSERA_RETURN_IF_ERROR_CTX(
      kernels::Gemm(false, true, 1.0f, dpre, weight_.value.view(), 0.0f, dx), name_ + " backward");
  return dx;
}

}  // namespace tessera::model
