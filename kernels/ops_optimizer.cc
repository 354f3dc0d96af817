// InitOptimizerSlots and ApplyOptimizer: validation, per-step scalars, backend table.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cpu/cpu_backend.h"
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

// The checks of the hyper-parameters and of step, shared by both entry points.
Status CheckConfig(std::string_view op, const OptimizerConfig& cfg) {
  TESSERA_RETURN_IF_ERROR(CheckKind(op, cfg.kind));
  if (!Finite(cfg.lr) || !Finite(cfg.weight_decay) || !Finite(cfg.momentum) ||
      !Finite(cfg.beta1) || !Finite(cfg.beta2) || !Finite(cfg.eps)) {
    return Invalid(op, "optimizer config has a non-finite hyper-parameter");
  }
  const bool adam = cfg.kind == OptimizerKind::kAdam || cfg.kind == OptimizerKind::kAdamW;
  if (adam && (cfg.beta1 < 0 || cfg.beta1 >= 1 || cfg.beta2 < 0 || cfg.beta2 >= 1)) {
    return Invalid(op, "Adam betas must lie in [0, 1)");
  }
  return Status::OK();
}

OptimizerOp OpOf(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd: return OptimizerOp::kSgd;
    case OptimizerKind::kMomentum: return OptimizerOp::kMomentum;
    case OptimizerKind::kAdaGrad: return OptimizerOp::kAdaGrad;
    case OptimizerKind::kAdam: return OptimizerOp::kAdam;
    case OptimizerKind::kAdamW: return OptimizerOp::kAdamW;
  }
  return OptimizerOp::kSgd;
}

math::OptimizerScalars ScalarsOf(const OptimizerConfig& cfg) {
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
  return s;
}

// Adam's bias corrections for `step` (>= 1).
void SetAdamStep(const OptimizerConfig& cfg, int64_t step, math::OptimizerScalars* s) {
  const double t = static_cast<double>(step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), t);
  // beta1 == 0 gives bc1 == 1; beta == 0 is fine. bc > 0 because beta < 1 and step >= 1.
  s->step_size = static_cast<float>(static_cast<double>(cfg.lr) / bc1);
  s->sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
}

// The update once every argument is checked: the per-step scalars, then the backend.
Status RunOptimizer(const Backend& be, const OptimizerConfig& cfg, int64_t step, float* param, const float* grad,
                    float* s0, float* s1, int64_t n, float grad_scale) {
  if (n == 0) return Status::OK();
  math::OptimizerScalars s = ScalarsOf(cfg);
  s.grad_scale = grad_scale;
  if (cfg.kind == OptimizerKind::kAdam || cfg.kind == OptimizerKind::kAdamW) SetAdamStep(cfg, step, &s);
  return be.optimizer(OpOf(cfg.kind), s, param, grad, s0, s1, n);
}

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
                      TensorView grad, std::span<const TensorView> slots, float grad_scale) {
  constexpr std::string_view kOp = "ApplyOptimizer";
  TESSERA_RETURN_IF_ERROR(CheckConfig(kOp, cfg));
  if (!Finite(grad_scale)) return Invalid(kOp, "grad_scale is not finite");
  if (step < 1) return Invalid(kOp, "step must be >= 1 (1-based), got " + std::to_string(step));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "param", param, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckView(kOp, "grad", grad, {DType::kF32}));
  TESSERA_RETURN_IF_ERROR(CheckSameNumel(kOp, "param", param, "grad", grad));
  if (grad.device != param.device) return Invalid(kOp, "grad is on a different device than param");
  TESSERA_RETURN_IF_ERROR(CheckSlots(kOp, cfg, slots, param.numel(), param.device));
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(param.device));
  float* s0 = slots.size() > 0 ? slots[0].as<float>() : nullptr;
  float* s1 = slots.size() > 1 ? slots[1].as<float>() : nullptr;
  return RunOptimizer(*be, cfg, step, param.as<float>(), grad.as<float>(), s0, s1, param.numel(), grad_scale);
}

Status ApplyOptimizerHost(const OptimizerConfig& cfg, int64_t step, float* param, const float* grad, float* s0,
                          float* s1, int64_t n, float grad_scale) {
  constexpr std::string_view kOp = "ApplyOptimizerHost";
  TESSERA_RETURN_IF_ERROR(CheckConfig(kOp, cfg));
  if (!Finite(grad_scale)) return Invalid(kOp, "grad_scale is not finite");
  if (step < 1) return Invalid(kOp, "step must be >= 1 (1-based), got " + std::to_string(step));
  if (n < 0) return Invalid(kOp, "negative length " + std::to_string(n));
  const int slots = NumOptimizerSlots(cfg.kind);
  if (n > 0 && (param == nullptr || grad == nullptr || (slots > 0 && s0 == nullptr) || (slots > 1 && s1 == nullptr))) {
    return Invalid(kOp, "null param, grad or slot for optimizer kind " + std::to_string(static_cast<int>(cfg.kind)));
  }
  return RunOptimizer(internal::CpuBackend(), cfg, step, param, grad, s0, s1, n, grad_scale);
}

Status ApplyOptimizerRows(const OptimizerConfig& cfg, int64_t width, std::span<float* const> rows,
                          std::span<const int64_t> steps, float* grad, float grad_scale) {
  constexpr std::string_view kOp = "ApplyOptimizerRows";
  TESSERA_RETURN_IF_ERROR(CheckConfig(kOp, cfg));
  if (std::isnan(cfg.clip_norm)) return Invalid(kOp, "clip_norm is NaN");
  if (!Finite(grad_scale)) return Invalid(kOp, "grad_scale is not finite");
  if (grad_scale != 1.0f && cfg.clip_norm > 0) return Invalid(kOp, "clipping needs the scaled gradient: scale a copy");
  if (width < 0 || rows.size() != steps.size()) {
    return Invalid(kOp, std::to_string(rows.size()) + " rows with " + std::to_string(steps.size()) +
                            " update counts, width " + std::to_string(width));
  }
  if (rows.empty() || width == 0) return Status::OK();
  if (grad == nullptr) return Invalid(kOp, "null gradient");
  // Every count checked before any row changes: a refused call updates nothing.
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i] < 1) return Invalid(kOp, "row " + std::to_string(i) + ": step " + std::to_string(steps[i]) + " < 1");
  }
  TESSERA_ASSIGN_OR_RETURN(const Backend* be, BackendFor(Device::kCPU));
  const bool adam = cfg.kind == OptimizerKind::kAdam || cfg.kind == OptimizerKind::kAdamW;
  const OptimizerOp op = OpOf(cfg.kind);
  math::OptimizerScalars s = ScalarsOf(cfg);
  s.grad_scale = grad_scale;
  // Blocks of rows: each block's gradients are clipped, its Adam corrections computed
  // (into arrays on the stack: nothing allocated), then one backend call updates it,
  // while the block's gradient rows are still in cache. The rows are host memory (the
  // servers' stores), so the CPU backend's rows entry runs them; CUDA has none.
  constexpr size_t kBlock = 256;
  float step_size[kBlock], sqrt_bc2[kBlock];
  int64_t scalars_step = 0;  // the step s's Adam fields were computed for
  for (size_t b = 0; b < rows.size(); b += kBlock) {
    const size_t len = std::min(kBlock, rows.size() - b);
    float* g0 = grad + static_cast<int64_t>(b) * width;
    for (size_t i = 0; i < len; ++i) {
      if (cfg.clip_norm > 0) {  // ClipByNorm's arithmetic: double norm, one float factor
        float* g = g0 + static_cast<int64_t>(i) * width;
        double sq = 0;
        TESSERA_RETURN_IF_ERROR(be->sum_squares(g, width, &sq));
        const double norm = std::sqrt(sq);
        if (norm > cfg.clip_norm) TESSERA_RETURN_IF_ERROR(be->scale(g, width, static_cast<float>(cfg.clip_norm / norm)));
      }
      if (adam) {
        if (steps[b + i] != scalars_step) {
          SetAdamStep(cfg, steps[b + i], &s);
          scalars_step = steps[b + i];
        }
        step_size[i] = s.step_size;
        sqrt_bc2[i] = s.sqrt_bc2;
      }
    }
    TESSERA_RETURN_IF_ERROR(cpu::OptimizerRows(op, s, rows.data() + b, g0, width, static_cast<int64_t>(len),
                                               adam ? step_size : nullptr, adam ? sqrt_bc2 : nullptr));
  }
  return Status::OK();
}

}  // namespace tessera::kernels
