// The optimizer step for one unit of storage (a dense chunk or a sparse row), the one
// definition the servers (bsp/ssp/asp) and the all-reduce workers both run, so switching
// --sync does not change the update rule:
// clip the unit's aggregated gradient to cfg.clip_norm, then run the fused kernel
// (kernels::ApplyOptimizer). All math is in kernels/; this file only fixes the order
// (clip, then update) and the memory layout of the slots.
//
// One function rather than the Optimizer class hierarchy STYLE.md sketches: the kernels
// already dispatch on OptimizerConfig::kind in one fused pass, so per-kind classes would
// be empty forwarding shells (docs/consistency.md, "Optimizers").
//
// Thread safety: pure over its arguments; callers own the memory.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "common/param_spec.h"
#include "common/status.h"

namespace tessera::kernels {

// Sets the NumOptimizerSlots(cfg.kind) slots of a unit of `n` elements to their initial
// values. `slots` holds them back to back: slot k is slots[k * n, (k + 1) * n).
// REQUIRES: slots.size() == NumOptimizerSlots(cfg.kind) * n.
Status InitSlots(const OptimizerConfig& cfg, std::span<float> slots, uint64_t n);

// Applies one update to `param` with gradient `grad` (same size; clipped in place first
// when cfg.clip_norm > 0, so the caller must not need it afterwards). `update_count` is
// the 1-based number of updates of this unit, this one included (Adam bias correction).
// `slots` is laid out as for InitSlots. Returns kInternal when the sizes disagree (a bug
// of ours: every size here comes from the shard map, not from a request).
//
// `mirror` (empty, or param's size): also receives the updated values, written in the
// same pass (the server's push+pull reply, so the values are not read a second time).
// The update runs in blocks that are each copied out while still in cache; the update
// rule is per element, so every value is bitwise the one of an unblocked update.
Status ApplyUpdate(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                   std::span<float> slots, std::span<float> grad, std::span<float> mirror = {});

// Called before the update reads block [begin, end) of a gradient its sender is still
// writing (a same-host streamed push, wire/shm_stream.h); returns once it may. Every
// element before `begin` is updated (and mirrored) by then. An error stops the update
// there, with the elements before it updated (the sender failed; the unit's update
// count is not advanced).
using GradientGate = std::function<Status(uint64_t begin, uint64_t end)>;

// The same with a gradient it only reads: no clipping, so kInternal when
// cfg.clip_norm > 0. The server's ssp/asp push applies straight from the received
// message with it, instead of copying a gradient that nothing rescales. With `gate`,
// each block of the update waits for its part of the gradient first (one wait for the
// whole gradient when the update runs on several threads). `grad_scale` (the mean's 1/W):
// the update reads grad_scale * grad, bitwise ApplyUpdate on a copy scaled by
// kernels::Scale (kernels::ApplyOptimizer), so a rescaled push needs no copy either.
Status ApplyUpdateReadOnly(const OptimizerConfig& cfg, int64_t update_count, std::span<float> param,
                           std::span<float> slots, std::span<const float> grad, std::span<float> mirror = {},
                           const GradientGate* gate = nullptr, float grad_scale = 1.0f);

}  // namespace tessera::kernels
