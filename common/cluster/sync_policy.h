// Synchronisation policies of the parameter plane (--sync, --grad_reduce) and StepGate,
// the pure state machine that decides when a server may apply a step's update and when
// it may answer a pull. The rules are specified in docs/consistency.md; this header is
// their single implementation (servers instantiate one StepGate per unit of
// aggregation: a dense chunk or a sparse table).
//
// Steps are a worker's training steps, 0, 1, 2, ... (or starting at a resumed step).
// "Worker w pushed step s" means w's gradient computed at step s has arrived. A pull
// "for step s" asks for the values a worker uses to compute step s's gradient.
//
// Thread safety: SyncPolicy is a value. StepGate is not synchronised: its owner (the
// server's reactor thread) serialises every call.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tessera {

enum class SyncMode : uint8_t {
  kBsp = 0,  // bulk synchronous: a step's update is applied once all W pushes arrived
  kSsp = 1,  // stale synchronous: updates on arrival, a worker at most K steps ahead
  kAsp = 2,  // asynchronous: updates on arrival, no gating
};

struct SyncPolicy {
  SyncMode mode = SyncMode::kBsp;
  int64_t staleness = 0;  // K of "ssp:K"; 0 for bsp and asp

  // "bsp", "ssp:K", "asp": the --sync spelling, which ParseSyncPolicy accepts back.
  std::string ToString() const;
  friend bool operator==(const SyncPolicy&, const SyncPolicy&) = default;
};

// Largest K accepted in "ssp:K" (keeps step arithmetic far from overflow).
inline constexpr int64_t kMaxStaleness = int64_t{1} << 30;

// Parses --sync: exactly "bsp", "asp" or "ssp:K" with K a decimal integer in
// [0, kMaxStaleness] (no sign, no spaces). Anything else gives kInvalidArgument whose
// message quotes the bad string and lists the accepted forms.
Result<SyncPolicy> ParseSyncPolicy(std::string_view text);

// How a server combines the W workers' gradients of one step.
enum class GradReduce : uint8_t {
  kMean = 0,  // sum / W (the gradient of the global batch when workers' batches are equal)
  kSum = 1,   // sum
};

// Parses --grad_reduce: "mean" or "sum"; anything else gives kInvalidArgument naming it.
Result<GradReduce> ParseGradReduce(std::string_view text);
std::string_view GradReduceName(GradReduce r);  // "mean" / "sum"

// Step of a request that carries none (wire Header.step == -1). A pull without a step is
// never gated: it reads the current values.
inline constexpr int64_t kNoStep = -1;

// Per-unit bookkeeping of pushed and applied steps, and the admission rules.
//
// State: for each worker w, pushed(w) = newest step w pushed (first_step - 1 before its
// first push); applied_step() = newest step s such that every worker's gradient for every
// step <= s is included in the values.
//   bsp: applied_step() advances only through MarkApplied, one step at a time.
//   ssp/asp: pushes are applied on arrival, so applied_step() == min_w pushed(w).
class StepGate {
 public:
  // REQUIRES: num_workers >= 1, policy valid (staleness in [0, kMaxStaleness]),
  // first_step >= 0 (checked: these come from a validated ShardMap, not from a request).
  StepGate(SyncPolicy policy, int num_workers, int64_t first_step = 0);

  // Checks whether RecordPush(worker, step) would succeed, changing nothing. Lets a
  // caller that records one push into several gates refuse the whole request before
  // touching any of them. Returns:
  //   kInvalidArgument    worker outside [0, W), or step < 0.
  //   kFailedPrecondition step <= pushed(worker) (a duplicate or a reordered push; the
  //                       message names the step and pushed(worker)); in bsp also a gap:
  //                       step > pushed(worker) + 1 (bsp needs every step from every
  //                       worker, so a skipped step would stall the unit forever).
  //   kResourceExhausted  bsp only: step > applied_step() + max_pending_steps (a client
  //                       that ran that far ahead of this unit without pulling from it).
  Status CheckPush(int worker, int64_t step, int64_t max_pending_steps) const;

  // Records the push after CheckPush(worker, step, max_pending_steps) passed; returns
  // its error otherwise, with the state unchanged.
  Status RecordPush(int worker, int64_t step, int64_t max_pending_steps);

  // True when the update of `step` may be applied now.
  //   bsp: step == applied_step() + 1 and every worker has pushed `step`.
  //   ssp/asp: `step` has been pushed by some worker (each push applies on arrival).
  bool CanApply(int64_t step) const;

  // bsp: records that the update of `step` is now in the values. Returns
  // kFailedPrecondition (and changes nothing) unless CanApply(step). A no-op returning OK
  // in ssp/asp, where applied_step() follows the pushes.
  Status MarkApplied(int64_t step);

  // True when a pull for `step` may be answered now.
  //   step < 0 (kNoStep): always.
  //   bsp:   applied_step() >= step - 1 (the update of the previous step is in).
  //   ssp:K: min_w pushed(w) >= step - K - 1 (the puller is at most K steps ahead of the
  //          slowest worker). K = 0 gives exactly the bsp condition.
  //   asp:   always.
  bool CanServePull(int64_t step) const;

  int64_t applied_step() const;
  int64_t min_pushed_step() const;
  // REQUIRES: 0 <= worker < num_workers().
  int64_t pushed_step(int worker) const { return pushed_[static_cast<size_t>(worker)]; }
  int num_workers() const { return static_cast<int>(pushed_.size()); }
  const SyncPolicy& policy() const { return policy_; }

 private:
  // Constant after construction
  SyncPolicy policy_;
  int64_t first_step_;

  std::vector<int64_t> pushed_;
  int64_t bsp_applied_;  // bsp only
};

}  // namespace tessera
