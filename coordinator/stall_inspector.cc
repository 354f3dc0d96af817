#include "coordinator/stall_inspector.h"

#include <algorithm>
#include <cstdio>

namespace tessera {

namespace {
std::string SecondsText(Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}
}  // namespace

void StallInspector::Start(Clock::time_point now) {
  started_ = true;
  since_ = now;
  min_step_ = -2;
  warned_ = false;
}

void StallInspector::SetPaused(bool paused, Clock::time_point now) {
  if (paused == paused_) return;
  paused_ = paused;
  if (paused) {
    paused_at_ = now;
  } else {
    since_ += now - paused_at_;  // the clock resumes where it stopped
  }
}

StallVerdict StallInspector::Check(const std::vector<WorkerProgress>& workers, Clock::time_point now) {
  StallVerdict v;
  if (!started_ || workers.empty()) return v;
  int64_t min_step = workers[0].step, max_step = workers[0].step;
  for (const auto& w : workers) {
    min_step = std::min(min_step, w.step);
    max_step = std::max(max_step, w.step);
  }
  if (min_step != min_step_) {
    // Progress (or a worker finished and left the list): restart the clock.
    if (min_step_ != -2) since_ = now;
    if (paused_) paused_at_ = now;  // the pause then adds only what follows this progress
    min_step_ = min_step;
    warned_ = false;
    return v;
  }
  if (paused_) return v;
  const Duration stalled = now - since_;
  const bool timed_out = options_.timeout > Duration::zero() && stalled >= options_.timeout;
  const bool warn = options_.warn > Duration::zero() && stalled >= options_.warn && !warned_;
  if (!timed_out && !warn) return v;

  // Under BSP a worker that stopped after step s leaves the others at s too (they wait
  // for its push of s+1), so with equal steps a silent worker is the likely holder.
  bool any_silent = false;
  for (const auto& w : workers) any_silent |= w.step == min_step && w.silent_for >= options_.silent_after;
  std::string names;
  for (const auto& w : workers) {
    if (w.step != min_step || (max_step == min_step && any_silent && w.silent_for < options_.silent_after)) continue;
    v.ranks.push_back(w.rank);
    names += (names.empty() ? "" : ", ") + w.name;
    if (w.silent_for >= options_.silent_after) names += " (silent for " + SecondsText(w.silent_for) + ")";
  }
  const std::string step_text = min_step < 0 ? "its first step" : "step " + std::to_string(min_step + 1);
  if (max_step > min_step || any_silent) {
    v.message = names + (v.ranks.size() == 1 ? " has" : " have") + " not finished " + step_text + " for " +
                SecondsText(stalled) + (max_step > min_step ? " while other workers are at step " + std::to_string(max_step) + " and" : std::string(" while the other workers")) +
                " wait for " + (v.ranks.size() == 1 ? "it" : "them");
  } else {
    // Everyone is at the same step: the workers are all waiting, e.g. on a server.
    v.message = "no worker has finished " + step_text + " for " + SecondsText(stalled) + " (" + names +
                "): every worker is waiting, look at the parameter servers";
  }
  if (timed_out) {
    v.kind = StallVerdict::kTimeout;
    char limit[48];
    std::snprintf(limit, sizeof(limit), " (--stall_timeout_s=%g)", std::chrono::duration<double>(options_.timeout).count());
    v.message += limit;
  } else {
    v.kind = StallVerdict::kWarn;
    warned_ = true;
  }
  return v;
}

}  // namespace tessera
