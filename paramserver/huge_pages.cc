#include "paramserver/huge_pages.h"

#include <sys/mman.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "common/timeline.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

namespace tessera::paramserver {
namespace {

class Collapser {
 public:
  void Add(void* p, uint64_t bytes) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!started_) {
        std::thread([this] { Run(); }).detach();
        started_ = true;
      }
      queue_.emplace_back(p, bytes);
      ++queued_;
    }
    cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    const uint64_t target = queued_;
    cv_.wait(l, [&] { return done_ >= target; });
  }

 private:
  void Run() {
    timeline::SetThreadName("huge page collapse");
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return !queue_.empty(); });
      const auto [p, bytes] = queue_.front();
      queue_.pop_front();
      l.unlock();
      ::madvise(p, bytes, MADV_COLLAPSE);  // a hint (see the header)
      l.lock();
      ++done_;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<void*, uint64_t>> queue_;
  uint64_t queued_ = 0, done_ = 0;
  bool started_ = false;
};

// Never destroyed: the thread may still wait on it while the process exits.
Collapser& TheCollapser() {
  static Collapser* c = new Collapser;
  return *c;
}

}  // namespace

void CollapseToHugePagesLater(void* p, uint64_t bytes) { TheCollapser().Add(p, bytes); }

void WaitForHugePageCollapses() { TheCollapser().Wait(); }

}  // namespace tessera::paramserver
