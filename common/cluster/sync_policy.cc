#include "common/cluster/sync_policy.h"

#include <glog/logging.h>

#include <algorithm>
#include <charconv>

namespace tessera {

std::string SyncPolicy::ToString() const {
  switch (mode) {
    case SyncMode::kBsp:
      return "bsp";
    case SyncMode::kAsp:
      return "asp";
    case SyncMode::kSsp:
      return "ssp:" + std::to_string(staleness);
  }
  return "unknown";
}

Result<SyncPolicy> ParseSyncPolicy(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("--sync='" + std::string(text) + "': " + std::string(why) +
                                   " (expected 'bsp', 'asp' or 'ssp:K' with K an integer in [0, " +
                                   std::to_string(kMaxStaleness) + "])");
  };
  if (text == "bsp") return SyncPolicy{SyncMode::kBsp, 0};
  if (text == "asp") return SyncPolicy{SyncMode::kAsp, 0};
  constexpr std::string_view kSspPrefix = "ssp:";
  if (!text.starts_with(kSspPrefix)) return bad("unknown sync mode");
  std::string_view digits = text.substr(kSspPrefix.size());
  if (digits.empty()) return bad("missing staleness K");
  // from_chars accepts a leading '-'; K is unsigned by definition, so require digits only.
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("staleness K is not a non-negative integer");
  }
  int64_t k = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), k);
  if (ec != std::errc() || end != digits.data() + digits.size() || k > kMaxStaleness) {
    return bad("staleness K out of range");
  }
  return SyncPolicy{SyncMode::kSsp, k};
}

Result<GradReduce> ParseGradReduce(std::string_view text) {
  if (text == "mean") return GradReduce::kMean;
  if (text == "sum") return GradReduce::kSum;
  return Status::InvalidArgument("--grad_reduce='" + std::string(text) +
                                 "': expected 'mean' or 'sum'");
}

std::string_view GradReduceName(GradReduce r) {
  switch (r) {
    case GradReduce::kMean:
      return "mean";
    case GradReduce::kSum:
      return "sum";
  }
  return "unknown";
}

StepGate::StepGate(SyncPolicy policy, int num_workers, int64_t first_step)
    : policy_(policy), first_step_(first_step), bsp_applied_(first_step - 1) {
  CHECK_GE(num_workers, 1);
  CHECK_GE(first_step, 0);
  CHECK(policy.staleness >= 0 && policy.staleness <= kMaxStaleness) << policy.staleness;
  pushed_.assign(static_cast<size_t>(num_workers), first_step - 1);
}

Status StepGate::CheckPush(int worker, int64_t step, int64_t max_pending_steps) const {
  if (worker < 0 || worker >= num_workers()) {
    return Status::InvalidArgument("worker index " + std::to_string(worker) + " outside [0, " +
                                   std::to_string(num_workers()) + ")");
  }
  if (step < 0) {
    return Status::InvalidArgument("a push needs a step >= 0, got " + std::to_string(step));
  }
  const int64_t pushed = pushed_step(worker);
  if (step <= pushed) {
    return Status::FailedPrecondition(
        "worker " + std::to_string(worker) + " pushed step " + std::to_string(step) +
        " again or out of order (its newest pushed step is " + std::to_string(pushed) +
        (step < first_step_ ? ", and the job started at step " + std::to_string(first_step_)
                            : std::string()) +
        ")");
  }
  if (policy_.mode == SyncMode::kBsp) {
    if (step > pushed + 1) {
      return Status::FailedPrecondition("bsp: worker " + std::to_string(worker) + " pushed step " +
                                        std::to_string(step) + " but has not pushed step " +
                                        std::to_string(pushed + 1));
    }
    if (step > bsp_applied_ + max_pending_steps) {
      return Status::ResourceExhausted("bsp: step " + std::to_string(step) + " is more than " +
                                       std::to_string(max_pending_steps) +
                                       " steps ahead of the applied step " +
                                       std::to_string(bsp_applied_));
    }
  }
  return Status::OK();
}

Status StepGate::RecordPush(int worker, int64_t step, int64_t max_pending_steps) {
  TESSERA_RETURN_IF_ERROR(CheckPush(worker, step, max_pending_steps));
  pushed_[static_cast<size_t>(worker)] = step;
  return Status::OK();
}

int64_t StepGate::min_pushed_step() const {
  return *std::min_element(pushed_.begin(), pushed_.end());
}

int64_t StepGate::applied_step() const {
  return policy_.mode == SyncMode::kBsp ? bsp_applied_ : min_pushed_step();
}

bool StepGate::CanApply(int64_t step) const {
  if (policy_.mode == SyncMode::kBsp) {
    return step == bsp_applied_ + 1 && min_pushed_step() >= step;
  }
  return step >= first_step_ &&
         std::any_of(pushed_.begin(), pushed_.end(), [step](int64_t p) { return p >= step; });
}

Status StepGate::MarkApplied(int64_t step) {
  if (policy_.mode != SyncMode::kBsp) return Status::OK();
  if (!CanApply(step)) {
    return Status::FailedPrecondition("bsp: step " + std::to_string(step) +
                                      " cannot be applied (applied step " +
                                      std::to_string(bsp_applied_) + ", slowest worker pushed " +
                                      std::to_string(min_pushed_step()) + ")");
  }
  bsp_applied_ = step;
  return Status::OK();
}

bool StepGate::CanServePull(int64_t step) const {
  if (step < 0) return true;
  switch (policy_.mode) {
    case SyncMode::kBsp:
      return bsp_applied_ >= step - 1;
    case SyncMode::kSsp:
      return min_pushed_step() >= step - policy_.staleness - 1;
    case SyncMode::kAsp:
      return true;
  }
  return true;
}

}  // namespace tessera
