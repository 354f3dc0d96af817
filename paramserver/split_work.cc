#include "paramserver/split_work.h"

#include <algorithm>
#include <chrono>

namespace tessera::paramserver {
namespace {

void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

SplitWork::SplitWork() : thread_([this] { Loop(); }) {}

SplitWork::~SplitWork() {
  stop_.store(true, std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_release);
  wake_.notify_one();
  thread_.join();
}

bool SplitWork::Claim(uint32_t epoch, size_t* range) {
  uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t count = (w >> 16) & 0xffff, next = w & 0xffff;
    if ((w >> 32) != epoch || next >= count) return false;
    // acq_rel: a successful claim continues the release sequence of the call's publishing
    // store, so the helper sees fn_ and the rest of the call's fields.
    if (word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      *range = next;
      return true;
    }
  }
}

void SplitWork::RunRange(size_t range) const {
  const size_t begin = range * chunk_;
  fn_(body_, begin, std::min(n_, begin + chunk_));
}

void SplitWork::Run(size_t n, size_t chunk, Fn fn, void* body) {
  if (n == 0) return;
  chunk = std::max({chunk, size_t{1}, (n + kMaxRanges - 1) / kMaxRanges});
  const size_t count = (n + chunk - 1) / chunk;
  if (count == 1 || skip_ > 0) {
    skip_ -= skip_ > 0;
    fn(body, 0, n);
    return;
  }
  fn_ = fn;
  body_ = body;
  n_ = n;
  chunk_ = chunk;
  ++epoch_;
  done_.store(0, std::memory_order_relaxed);
  word_.store(Pack(epoch_, count, 0), std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_release);
  wake_.notify_one();  // no system call unless the helper sleeps
  size_t mine = 0, range = 0;
  while (Claim(epoch_, &range)) {
    RunRange(range);
    ++mine;
  }
  // Every range is claimed; wait for the one the helper holds, if any.
  if (done_.load(std::memory_order_acquire) + mine == count) {
    backoff_ = kMinBackoff;
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  for (uint32_t spins = 0; done_.load(std::memory_order_acquire) + mine != count; ++spins) {
    if (spins < 4096) {
      Pause();
    } else {
      std::this_thread::yield();  // the helper was preempted inside its range
    }
  }
  if (std::chrono::steady_clock::now() - start > kSlowJoin) {
    skip_ = backoff_;
    backoff_ = std::min(2 * backoff_, kMaxBackoff);
  } else {
    backoff_ = kMinBackoff;
  }
}

void SplitWork::Loop() {
  uint32_t seen = 0;
  for (;;) {
    wake_.wait(seen, std::memory_order_acquire);
    seen = wake_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    const auto epoch = static_cast<uint32_t>(word_.load(std::memory_order_acquire) >> 32);
    size_t range = 0;
    while (Claim(epoch, &range)) {
      RunRange(range);
      helper_ranges_.fetch_add(1, std::memory_order_relaxed);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
}

}  // namespace tessera::paramserver
