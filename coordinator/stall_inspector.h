// Stall inspector: finds the worker(s) holding up training. Under BSP a step completes
// only when every worker pushed it, so one stuck worker (a hung kernel, a deadlock, a
// stopped process whose heartbeat thread still runs or whose heartbeat timeout is long)
// stalls the whole job without any peer going silent. The inspector watches the
// slowest worker's step: when it has not advanced for `warn` it names the workers at
// that step (and says how far the others are), and after `timeout` it tells the
// coordinator to end the job instead of hanging forever.
//
// Pure bookkeeping over (rank, step) samples and a clock, so it is unit-tested without
// sockets. Thread safety: none; the coordinator's reactor thread owns it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"

namespace tessera {

struct StallOptions {
  Duration warn = std::chrono::seconds(60);      // <= 0: never warn. Default: 60 s
  Duration timeout = std::chrono::seconds(600);  // <= 0: never end the job. Default: 600 s
  // When every worker is at the same step, one silent this long (a stopped process) is
  // the one holding the step up. Default: 2 s (the coordinator uses 4 heartbeat intervals).
  Duration silent_after = std::chrono::seconds(2);
};

// One unfinished worker's progress: its newest completed step (-1: none yet).
struct WorkerProgress {
  int rank = 0;
  std::string name;  // "worker 1 (rank 4)"
  int64_t step = -1;
  Duration silent_for{};  // since its last message
};

struct StallVerdict {
  enum Kind { kNone, kWarn, kTimeout } kind = kNone;
  std::vector<int> ranks;  // the workers holding the job up
  std::string message;     // names them, their step, how long, and where the others are
};

class StallInspector {
 public:
  explicit StallInspector(StallOptions options) : options_(options) {}

  // Training started (the workers got the shard map): the clock starts now.
  void Start(Clock::time_point now);

  // Called periodically with every unfinished worker. Returns kWarn once per stalled
  // step when the slowest step has not moved for `warn`, and kTimeout (every call from
  // then on) once it has not moved for `timeout`.
  StallVerdict Check(const std::vector<WorkerProgress>& workers, Clock::time_point now);

  // While paused (a checkpoint is being taken, which may hold the workers at a step
  // boundary) the stall clock stands still: that time counts neither towards the
  // warning nor towards the timeout, and Check reports nothing.
  void SetPaused(bool paused, Clock::time_point now);

 private:
  const StallOptions options_;
  bool started_ = false;
  int64_t min_step_ = -2;             // slowest step at the last change
  Clock::time_point since_{};         // when min_step_ last changed
  bool warned_ = false;               // warned about min_step_ already
  bool paused_ = false;
  Clock::time_point paused_at_{};     // when the current pause began (or progress was seen in it)
};

}  // namespace tessera
