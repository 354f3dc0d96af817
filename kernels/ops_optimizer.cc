// InitOptimizerSlots and ApplyOptimizer: validation, per-step scalars, backend table.
#include <cmath>
#include <string>

#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "kernels/validate.h"

namespace tessera::kernels {

using internal::Backend;
using internal::BackendFor;
using internal::CheckSameNumel;
using internal::CheckView;
using internal::Invalid;
using internal::OptimizerOp;

namespace {

Status CheckKind(std::string_view op, OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kMomentum:
    case OptimizerKind::kAdaGrad:
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      return Status::OK();
  }
  return Invalid(op, "unknown optimizer kind " + std::to_string(static_cast<int>(kind)));
}

// slots: count, dtype, numel == want_numel, device == dev.
Status CheckSlots(std::string_view op, const OptimizerConfig& cfg,
                  std::span<const TensorView> slots, int64_t want_numel, Device dev) {
  const size_t want = static_cast<size_t>(NumOptimizerSlots(cfg.kind));
  if (slots.size() != want) {
    return Invalid(op, "optimizer kind " + std::to_string(static_cast<int>(cfg.kind)) +
                           " needs " + std::to_string(want) + " slot tensors, got " +
                           std::to_string(slots.size()));
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::string name = "slots[" + std::to_string(i) + "]";
    TESSERA_RETURN_IF_ERROR(CheckView(op, name, slots[i], {DType::kF32}));
    if (want_numel >= 0 && slots[i].numel() != want_numel) {
      return Invalid(op, name + " " + internal::Describe(slots[i]) + " must have " +
                             std::to_string(want_numel) + " elements like param");
    }
    if (slots[i].device != dev) return Invalid(op, name + " is on a different device");
  }
  return Status::OK();
}

bool Finite(float x) { return std::isfinite(x); }

}  // namespace

Status InitOptimizerSlots(const OptimizerConfig& cfg, std::span<const TensorView> slots) {
  constexpr std::string_view kOp = "InitOptimizerSlots";
  TESSERA_RETURN_IF_ERROR(CheckKind(kOp, cfg.kind));
  const Device dev = slots.empty() ? Device::kCPU : slots[0].device;
  TESSERA_RETURN_IF_ERROR(CheckSlots(kOp, cfg, slots, -1, dev));
  if (slots.empty()) return Status::OK();
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(dev));
  const float value = cfg.kind == OptimizerKind::kAdaGrad ? cfg.initial_accumulator : 0.0f;
  for (const TensorView& s : slots) {
    if (s.numel() > 0) TESSERA_RETURN_IF_ERROR(be->fill(s.as<float>(), s.numel(), value));
  }
  return Status::OK();
}

Status ApplyOptimizer(const OptimizerConfig& cfg, int64_t step, TensorView param,
                      TensorView grad, std::span<const TensorView> slots) {
  constexpr std::string_view kOp = "ApplyOptimizer";
  TESSERA_RETURN_IF_ERROR(CheckKind(kOp, cfg.kind));
  if (step < 1) return Invalid(kOp, "step must be >= 1 (1-based), got " + std::to_string(step));
  if (!Finite(cfg.lr) || !Finite(cfg.weight_decay) || !Finite(cfg.momentum) ||
      !Finite(cfg.beta1) || !Finite(cfg.beta2) || !Finite(cfg.eps)) {
    return Invalid(kOp, "optimizer config has a non-finite hyper-parameter");
  }
  const bool adam = cfg.kind == OptimizerKind::kAdam || cfg.kind == OptimizerKind::kAdamW;
  if (adam && (cfg.beta1 < 0 || cfg.beta1 >= 1 || cfg.beta2 < 0 || cfg.beta2 >= 1)) {
    return Invalid(kOp, "Adam betas must lie in [0, 1)");
  }
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "param", param, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "grad", grad, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "param", param, "grad", grad));
  if (grad.device != param.device) return Invalid(kOp, "grad is on a different device than param");
  TESSERA_RETURN_IF_ERROR(CheckSlots(kOp, cfg, slots, param.numel(), param.device));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(param.device));
  if (param.numel() == 0) return Status::OK();

  math::OptimizerScalars s;
  s.lr = cfg.lr;
  s.weight_decay = cfg.weight_decay;
  s.momentum = cfg.momentum;
  s.nesterov = cfg.nesterov;
  s.beta1 = cfg.beta1;
  s.beta2 = cfg.beta2;
  s.one_minus_beta1 = static_cast<float>(1.0 - static_cast<double>(cfg.beta1));
  s.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(cfg.beta2));
  s.eps = cfg.eps;
  OptimizerOp op = OptimizerOp::kSgd;
  switch (cfg.kind) {
    case OptimizerKind::kSgd: op = OptimizerOp::kSgd; break;
    case OptimizerKind::kMomentum: op = OptimizerOp::kMomentum; break;
    case OptimizerKind::kAdaGrad: op = OptimizerOp::kAdaGrad; break;
    case OptimizerKind::kAdam: op = OptimizerOp::kAdam; break;
    case OptimizerKind::kAdamW: op = OptimizerOp::kAdamW; break;
  }
  if (adam) {
    const double t = static_cast<double>(step);
    const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), t);
    const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), t);
    // beta1 == 0 gives bc1 == 1; beta == 0 is fine. bc > 0 because beta < 1 and step >= 1.
    s.step_size = static_cast<float>(static_cast<double>(cfg.lr) / bc1);
    s.sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  }
  float* s0 = slots.size() > 0 ? slots[0].as<float>() : nullptr;
  float* s1 = slots.size() > 1 ? slots[1].as<float>() : nullptr;
  return be->optimizer(op, s, param.as<float>(), grad.as<float>(), s0, s1, param.numel());
}

}  // namespace tessera::kernels
