#include "kernels/optimizer_step.h"

#include "common/tensor.h"
#include "kernels/ops.h"

namespace tessera::kernels {
namespace {

TensorView View(float* data, uint64_t n) {
  return TensorView{data, DType::kF32, {static_cast<int64_t>(n)}, Device::kCPU};
}

// At most 2 slots (Adam); a fixed array keeps the hot path free of allocation.
struct SlotViews {
  TensorView views[2];
  size_t count = 0;
  std::span<const TensorView> span() const { return {views, count}; }
};

Result<SlotViews> Slots(const OptimizerConfig& cfg, std::span<float> slots, uint64_t n) {
  const int k = NumOptimizerSlots(cfg.kind);
  if (k < 0 || k > 2 || slots.size() != static_cast<uint64_t>(k) * n) {
    return Status::Internal("optimizer slots: " + std::to_string(slots.size()) + " floats for " +
                            std::to_string(k) + " slots of " + std::to_string(n));
  }
  SlotViews v;
  for (int i = 0; i < k; ++i) v.views[v.count++] = View(slots.data() + i * n, n);
  return v;
}

}  // namespace

Status InitSlots(const OptimizerConfig& cfg, std::span<float> slots, uint64_t n) {
  TESSERA_ASSIGN_OR_RETURN(SlotViews v, Slots(cfg, slots, n));
  Status st = kernels::InitOptimizerSlots(cfg, v.span());
  return st.ok() ? st : Status::Internal(st.ToString());
}

Status ApplyUpdate(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                   std::span<float> slots, std::span<float> grad) {
  const uint64_t n = param.size();
  if (grad.size() != n) {
    return Status::Internal("ApplyUpdate: gradient has " + std::to_string(grad.size()) +
                            " elements, parameter " + std::to_string(n));
  }
  TESSERA_ASSIGN_OR_RETURN(SlotViews v, Slots(cfg, slots, n));
  const TensorView g = View(grad.data(), n);
  if (cfg.clip_norm > 0) {
    auto norm = kernels::ClipByNorm(g, cfg.clip_norm);
    if (!norm.ok()) return Status::Internal(norm.status().ToString());
  }
  Status st = kernels::ApplyOptimizer(cfg, update_count, View(param.data(), n), g, v.span());
  return st.ok() ? st : Status::Internal(st.ToString());
}

Status ApplyUpdateReadOnly(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                           std::span<float> slots, std::span<const float> grad) {
  if (cfg.clip_norm > 0) return Status::Internal("ApplyUpdateReadOnly: clipping writes the gradient");
  const uint64_t n = param.size();
  if (grad.size() != n) {
    return Status::Internal("ApplyUpdate: gradient has " + std::to_string(grad.size()) +
                            " elements, parameter " + std::to_string(n));
  }
  TESSERA_ASSIGN_OR_RETURN(SlotViews v, Slots(cfg, slots, n));
  // ApplyOptimizer reads the gradient and writes only param and slots (the backends take
  // it as const float*); a TensorView has no read-only form.
  const TensorView g = View(const_cast<float*>(grad.data()), n);
  Status st = kernels::ApplyOptimizer(cfg, update_count, View(param.data(), n), g, v.span());
  return st.ok() ? st : Status::Internal(st.ToString());
}

}  // namespace tessera::kernels
