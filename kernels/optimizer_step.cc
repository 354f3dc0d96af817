#include "kernels/optimizer_step.h"

#include <algorithm>
#include <cstring>

#include "common/stream_copy.h"
#include "common/tensor.h"
#include "kernels/cpu/parallel.h"
#include "kernels/ops.h"

namespace tessera::kernels {
namespace {

TensorView View(float* data, uint64_t n) {
  return TensorView{data, DType::kF32, {static_cast<int64_t>(n)}, Device::kCPU};
}

// At most 2 slots (Adam), as pointers: a TensorView allocates its shape, and the
// update runs per request.
struct SlotPtrs {
  float* at[2] = {nullptr, nullptr};
  size_t count = 0;
};

Result<SlotPtrs> Slots(const OptimizerConfig& cfg, std::span<float> slots, uint64_t n) {
  const int k = NumOptimizerSlots(cfg.kind);
  if (k < 0 || k > 2 || slots.size() != static_cast<uint64_t>(k) * n) {
    return Status::Internal("optimizer slots: " + std::to_string(slots.size()) + " floats for " +
                            std::to_string(k) + " slots of " + std::to_string(n));
  }
  SlotPtrs v;
  for (int i = 0; i < k; ++i) v.at[v.count++] = slots.data() + i * n;
  return v;
}

// Elements per block of an update with a mirror: 32 KiB of each stream, so the block's
// values are still in L1/L2 when they are copied out. A multiple of any vector width,
// so the blocks' loops split exactly as the unblocked loop does.
constexpr uint64_t kMirrorBlock = 8192;

// The optimizer over [0, n), and `mirror` (empty or n floats) given the updated values.
Status UpdateAndMirror(const OptimizerConfig& cfg, int64_t update_count, float* param, const SlotPtrs& v,
                       float* grad, uint64_t n, std::span<float> mirror, const GradientGate* gate = nullptr,
                       float grad_scale = 1.0f) {
  if (!mirror.empty() && mirror.size() != n) {
    return Status::Internal("ApplyUpdate: mirror has " + std::to_string(mirror.size()) + " elements, parameter " +
                            std::to_string(n));
  }
  // Unblocked when there is nothing to mirror, or when the loop would be split over
  // threads (blocks below the grain would run it on one).
  const bool blocked = (!mirror.empty() || gate != nullptr) &&
                       (cpu::CpuThreads() <= 1 || static_cast<int64_t>(n) <= cpu::kParallelGrain);
  const uint64_t step = blocked ? kMirrorBlock : std::max<uint64_t>(n, 1);
  // This unit may be one chunk of a larger reply (ScopedPayloadBytes): the reply's size decides.
  const uint64_t mirror_payload = std::max<uint64_t>(n * sizeof(float), t_payload_bytes);
  uint64_t b = 0;
  do {  // once at least, so an empty unit is validated as before
    const uint64_t len = std::min(step, n - b);
    if (gate != nullptr) TESSERA_RETURN_IF_ERROR((*gate)(b, b + len));
    float* s0 = v.count > 0 ? v.at[0] + b : nullptr;
    float* s1 = v.count > 1 ? v.at[1] + b : nullptr;
    Status st = kernels::ApplyOptimizerHost(cfg, update_count, param + b, grad + b, s0, s1, static_cast<int64_t>(len),
                                            grad_scale);
    if (!st.ok()) return Status::Internal(st.ToString());
    // The block's values are in L1/L2; a large mirror (a same-host reply) is written past
    // the caches (common/stream_copy.h).
    if (len > 0 && !mirror.empty()) PayloadCopy(mirror.data() + b, param + b, len * sizeof(float), mirror_payload);
    b += step;
  } while (b < n);
  return Status::OK();
}

}  // namespace

Status InitSlots(const OptimizerConfig& cfg, std::span<float> slots, uint64_t n) {
  TESSERA_ASSIGN_OR_RETURN(SlotPtrs v, Slots(cfg, slots, n));
  TensorView views[2];
  for (size_t i = 0; i < v.count; ++i) views[i] = View(v.at[i], n);
  Status st = kernels::InitOptimizerSlots(cfg, {views, v.count});
  return st.ok() ? st : Status::Internal(st.ToString());
}

Status ApplyUpdate(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                   std::span<float> slots, std::span<float> grad, std::span<float> mirror) {
  const uint64_t n = param.size();
  if (grad.size() != n) {
    return Status::Internal("ApplyUpdate: gradient has " + std::to_string(grad.size()) +
                            " elements, parameter " + std::to_string(n));
  }
  TESSERA_ASSIGN_OR_RETURN(SlotPtrs v, Slots(cfg, slots, n));
  const TensorView g = View(grad.data(), n);
  if (cfg.clip_norm > 0) {
    auto norm = kernels::ClipByNorm(g, cfg.clip_norm);
    if (!norm.ok()) return Status::Internal(norm.status().ToString());
  }
  return UpdateAndMirror(cfg, update_count, param.data(), v, grad.data(), n, mirror);
}

Status ApplyUpdateReadOnly(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                           std::span<float> slots, std::span<const float> grad, std::span<float> mirror,
                           const GradientGate* gate, float grad_scale) {
  if (cfg.clip_norm > 0) return Status::Internal("ApplyUpdateReadOnly: clipping writes the gradient");
  const uint64_t n = param.size();
  if (grad.size() != n) {
    return Status::Internal("ApplyUpdate: gradient has " + std::to_string(grad.size()) +
                            " elements, parameter " + std::to_string(n));
  }
  TESSERA_ASSIGN_OR_RETURN(SlotPtrs v, Slots(cfg, slots, n));
  // ApplyOptimizer reads the gradient and writes only param and slots (the backends take
  // it as const float*); a TensorView has no read-only form.
  return UpdateAndMirror(cfg, update_count, param.data(), v, const_cast<float*>(grad.data()), n, mirror, gate,
                         grad_scale);
}

}  // namespace tessera::kernels
