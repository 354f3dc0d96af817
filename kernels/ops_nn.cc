// Fused bias + activation and the losses: validation, then the backend table.
#include <string>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/validate.h"

namespace tessera::kernels {

using internal::Backend;
using internal::BackendFor;
using internal::CheckMatrix;
using internal::CheckRank;
using internal::CheckSameDevice;
using internal::CheckSameNumel;
using internal::CheckView;
using internal::Describe;
using internal::Invalid;
using internal::IsAbsent;

namespace {

constexpr auto kF32 = DType::kF32;

Result<math::Act> ToMath(std::string_view op, Activation act) {
  switch (act) {
    case Activation::kIdentity: return math::Act::kIdentity;
    case Activation::kRelu: return math::Act::kRelu;
    case Activation::kGelu: return math::Act::kGelu;
  }
  return Invalid(op, "unknown activation " + std::to_string(static_cast<int>(act)));
}

Status CheckSameShape(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b) {
  if (a.shape != b.shape) {
    return Invalid(op, std::string(b_name) + " " + Describe(b) + " must have the shape of " +
                           std::string(a_name) + " " + Describe(a));
  }
  return Status::OK();
}

// bias: absent, or f32 [cols].
Status CheckBias(std::string_view op, std::string_view name, const TensorView& bias,
                 int64_t cols) {
  if (IsAbsent(bias)) return Status::OK();
  TESSERA_RETURN_IF_ERROR(CheckView(op, name, bias, {kF32}));
  if (bias.shape.size() != 1 || bias.shape[0] != cols) {
    return Invalid(op, std::string(name) + " must be [" + std::to_string(cols) + "], got " +
                           Describe(bias));
  }
  return Status::OK();
}

// logits f32 [N, C] with C >= 1 (unless N == 0), labels i32 [N].
Status CheckClassification(std::string_view op, const TensorView& logits,
                           const TensorView& labels) {
  TESSERA_RETURN_IF_ERROR(CheckMatrix(op, "logits", logits, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(op, "labels", labels, {DType::kI32}));
  TESSERA_RETURN_IF_ERROR(CheckRank(op, "labels", labels, 1));
  if (labels.shape[0] != logits.shape[0]) {
    return Invalid(op, "labels " + Describe(labels) + " must have one entry per row of logits " +
                           Describe(logits));
  }
  if (logits.shape[0] > 0 && logits.shape[1] < 1) {
    return Invalid(op, "logits must have at least one class, got " + Describe(logits));
  }
  return Status::OK();
}

Status CheckLabelsInRange(std::string_view op, const Backend* be, const TensorView& labels,
                          int64_t classes) {
  bool ok = false;
  TESSERA_RETURN_IF_ERROR(
      be->indices_in_range(labels.data, DType::kI32, labels.numel(), classes, &ok));
  if (!ok) return Invalid(op, "a label is outside [0, " + std::to_string(classes) + ")");
  return Status::OK();
}

}  // namespace

Status BiasActivationForward(Activation act, TensorView x, TensorView bias, TensorView y) {
  constexpr std::string_view kOp = "BiasActivationForward";
  TESSERA_ASSIGN_OR_RETURN(const math::Act a, ToMath(kOp, act));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "x", x, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "y", y, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameShape(kOp, "x", x, "y", y));
  TESSERA_RETURN_IF_ERROR(CheckBias(kOp, "bias", bias, x.shape[1]));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&x, &bias, &y}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (x.numel() == 0) return Status::OK();
  return be->bias_act_forward(a, x.as<float>(), bias.as<float>(), y.as<float>(), x.shape[0],
                              x.shape[1]);
}

Status BiasActivationBackward(Activation act, TensorView dy, TensorView x, TensorView bias,
                              TensorView dpre, TensorView dbias) {
  constexpr std::string_view kOp = "BiasActivationBackward";
  TESSERA_ASSIGN_OR_RETURN(const math::Act a, ToMath(kOp, act));
  TESSERA_RETURN_IF_ERROR(CheckMatrix(kOp, "x", x, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dy", dy, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameShape(kOp, "x", x, "dy", dy));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dpre", dpre, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameShape(kOp, "x", x, "dpre", dpre));
  TESSERA_RETURN_IF_ERROR(CheckBias(kOp, "bias", bias, x.shape[1]));
  TESSERA_RETURN_IF_ERROR(CheckBias(kOp, "dbias", dbias, x.shape[1]));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&dy, &x, &bias, &dpre, &dbias}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  const int64_t rows = x.shape[0], cols = x.shape[1];
  if (cols == 0) return Status::OK();
  if (rows == 0) {  // column sums of an empty matrix
    return IsAbsent(dbias) ? Status::OK() : be->fill(dbias.as<float>(), cols, 0.0f);
  }
  return be->bias_act_backward(a, dy.as<float>(), x.as<float>(), bias.as<float>(),
                               dpre.as<float>(), dbias.as<float>(), rows, cols);
}

Result<double> SoftmaxCrossEntropy(TensorView logits, TensorView labels, TensorView dlogits) {
  constexpr std::string_view kOp = "SoftmaxCrossEntropy";
  TESSERA_RETURN_IF_ERROR(CheckClassification(kOp, logits, labels));
  if (!IsAbsent(dlogits)) {
    TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dlogits", dlogits, {kF32}));
    TESSERA_RETURN_IF_ERROR(CheckSameShape(kOp, "logits", logits, "dlogits", dlogits));
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&logits, &labels, &dlogits}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  const int64_t n = logits.shape[0], c = logits.shape[1];
  if (n == 0) return 0.0;
  TESSERA_RETURN_IF_ERROR(CheckLabelsInRange(kOp, be, labels, c));
  double loss = 0;
  TESSERA_RETURN_IF_ERROR(be->softmax_xent(logits.as<float>(), labels.as<int32_t>(),
                                           dlogits.as<float>(), n, c, &loss));
  return loss;
}

Status ArgMax(TensorView logits, TensorView out) {
  constexpr std::string_view kOp = "ArgMax";
  TESSERA_RETURN_IF_ERROR(CheckClassification(kOp, logits, out));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&logits, &out}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  if (logits.shape[0] == 0) return Status::OK();
  return be->argmax(logits.as<float>(), logits.shape[0], logits.shape[1], out.as<int32_t>());
}

Result<int64_t> CountCorrect(TensorView logits, TensorView labels) {
  constexpr std::string_view kOp = "CountCorrect";
  TESSERA_RETURN_IF_ERROR(CheckClassification(kOp, logits, labels));
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&logits, &labels}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  int64_t count = 0;
  if (logits.shape[0] == 0) return count;
  TESSERA_RETURN_IF_ERROR(be->count_correct(logits.as<float>(), labels.as<int32_t>(),
                                            logits.shape[0], logits.shape[1], &count));
  return count;
}

Result<double> SigmoidBinaryCrossEntropy(TensorView logits, TensorView labels,
                                         TensorView dlogits) {
  constexpr std::string_view kOp = "SigmoidBinaryCrossEntropy";
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "logits", logits, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "labels", labels, {kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "logits", logits, "labels", labels));
  if (!IsAbsent(dlogits)) {
    TESSERA_RETURN_IF_ERROR(CheckView(kOp, "dlogits", dlogits, {kF32}));
    TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "logits", logits, "dlogits", dlogits));
  }
  Device dev;
  TESSERA_RETURN_IF_ERROR(CheckSameDevice(kOp, {&logits, &labels, &dlogits}, &dev));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  double loss = 0;
  if (logits.numel() == 0) return loss;
  TESSERA_RETURN_IF_ERROR(be->sigmoid_bce(logits.as<float>(), labels.as<float>(),
                                          dlogits.as<float>(), logits.numel(), &loss));
  return loss;
}

}  // namespace tessera::kernels
