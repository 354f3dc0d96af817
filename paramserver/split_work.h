// SplitWork: one persistent helper thread that takes ranges of a large batch beside the
// thread that owns the batch, so a server's store work uses a core its reactor would
// leave idle. At one server and one worker per host the server's reactor, the worker's
// reactor and the worker's main thread take turns (docs/benchmarks-sparse-step.md,
// "The critical path"): while the server works, a second core has nothing to do.
//
// For(n, chunk, body) hands out the ranges [k * chunk, min(n, (k + 1) * chunk)) one at a
// time from a shared counter: the calling thread starts on them at once and the helper
// takes the next one when it wakes, so a helper slow to wake (a futex wake-up costs tens
// of µs on a VM) or busy elsewhere costs the caller at most the range it holds, never the
// whole wake-up. The call returns when every range has run, and the helper touches
// nothing of the call after that.
//
// On a busy machine the helper can be preempted inside a range, and the caller then
// waits for the scheduler to run it again (milliseconds). A wait longer than kSlowJoin
// makes the next calls run on the caller alone: kMinBackoff calls, doubling up to
// kMaxBackoff while the waits stay long.
//
// The caller's body must be safe to run on two ranges at once (disjoint writes only);
// which ranges run on which thread varies from call to call, so a body whose result
// depends on that is wrong.
//
// Threads: For and the destructor from one owner thread at a time (the server's reactor:
// the store that holds this is owned by it); the helper runs only inside For's bodies.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "common/status.h"

namespace tessera::paramserver {

class SplitWork {
 public:
  SplitWork();
  ~SplitWork();  // stops and joins the helper
  SplitWork(const SplitWork&) = delete;
  SplitWork& operator=(const SplitWork&) = delete;

  // body(begin, end) for every range of at most `chunk` items covering [0, n), on this
  // thread and the helper; returns when all have run. `chunk` is raised as needed to keep
  // the ranges at most kMaxRanges. While backing off (above): body(0, n) on this thread.
  template <class F>
  void For(size_t n, size_t chunk, F& body) {
    Run(n, chunk, [](void* b, size_t begin, size_t end) { (*static_cast<F*>(b))(begin, end); }, &body);
  }

  static constexpr size_t kMaxRanges = 0xffff;
  static constexpr std::chrono::microseconds kSlowJoin{50};
  static constexpr uint32_t kMinBackoff = 16, kMaxBackoff = 4096;

  // Ranges the helper ran since construction (tests: both threads took part).
  uint64_t helper_ranges() const { return helper_ranges_.load(std::memory_order_relaxed); }

 private:
  using Fn = void (*)(void*, size_t, size_t);
  // word_: epoch (high 32 bits) | ranges (16) | next unclaimed range (16).
  static uint64_t Pack(uint64_t epoch, uint64_t count, uint64_t next) { return epoch << 32 | count << 16 | next; }
  void Run(size_t n, size_t chunk, Fn fn, void* body);
  // Claims the next range of `epoch`'s call; false when none is left or the call is over.
  bool Claim(uint32_t epoch, size_t* range);
  void RunRange(size_t range) const;
  void Loop();

  // The call's, written by the owner before it publishes word_ (release) and read by the
  // helper only after a claim of the same epoch succeeded (acquire): stable while read.
  Fn fn_ = nullptr;
  void* body_ = nullptr;
  size_t n_ = 0, chunk_ = 0;
  uint32_t epoch_ = 0;  // owner only
  uint32_t skip_ = 0;   // owner only: calls left to run alone after a slow join
  uint32_t backoff_ = kMinBackoff;  // owner only

  std::atomic<uint64_t> word_{0};
  std::atomic<uint32_t> done_{0};  // ranges the helper finished in the current call
  std::atomic<uint32_t> wake_{0};  // bumped per call; the helper sleeps on it
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> helper_ranges_{0};
  std::thread thread_;
};

// The error of the lowest failing range of a SplitWork call (the one a single call over
// the whole batch would have returned first); ranges report from both threads.
class SplitErrors {
 public:
  void Note(size_t begin, Status st) {
    if (st.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (begin < begin_) {
      begin_ = begin;
      st_ = std::move(st);
    }
  }
  Status first() {
    std::lock_guard<std::mutex> lock(mu_);
    return st_;
  }

 private:
  std::mutex mu_;
  size_t begin_ = SIZE_MAX;
  Status st_;
};

}  // namespace tessera::paramserver
