#include "worker/handle.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstddef>
#include <new>

#include "wire/thread_cache.h"

namespace tessera::worker {

namespace {

// Each waiting thread's eventfd for leading, made on its first lead, closed at its exit.
struct ThreadWake {
  int fd = -1;
  ~ThreadWake() {
    if (fd >= 0) close(fd);
  }
};
thread_local ThreadWake tl_wake;

int ThreadWakeFd() {
  if (tl_wake.fd < 0) tl_wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  return tl_wake.fd;
}

// A handle's state (with shared_ptr's count beside it) from a per-thread cache of raw
// blocks: every request made one, and a 4 KiB round trip's allocations are counted
// (issue 17). allocate_shared constructs and destroys the State in the block; the
// cache only keeps the memory.
template <typename T>
struct StateAllocator {
  using value_type = T;
  StateAllocator() = default;
  template <typename U>
  StateAllocator(const StateAllocator<U>&) {}  // NOLINT: rebinding, as std::allocator
  struct alignas(alignof(T)) Block {
    std::byte bytes[sizeof(T)];
    static void Reset(Block&) {}
  };
  using Cache = wire::ThreadCache<Block, 8>;
  T* allocate(size_t n) {
    if (n != 1) return std::allocator<T>().allocate(n);
    return reinterpret_cast<T*>(Cache::Take()->bytes);
  }
  void deallocate(T* p, size_t n) {
    if (n != 1) return std::allocator<T>().deallocate(p, n);
    Cache::Give(reinterpret_cast<Block*>(p));
  }
  template <typename U>
  bool operator==(const StateAllocator<U>&) const { return true; }
};

}  // namespace

Handle::Handle(Status status) : state_(std::allocate_shared<State>(StateAllocator<State>())) {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->status = std::move(status);
}

Handle Handle::Pending(int parts) {
  Handle h;
  std::lock_guard<std::mutex> l(h.state_->mu);
  h.state_->remaining = parts;
  return h;
}

bool Handle::IsDone() const {
  std::unique_lock<std::mutex> l(state_->mu);
  while (!state_->deferred.empty()) RunDeferred(l);
  return state_->remaining <= 0;
}

Status Handle::Wait(Duration timeout) const {
  const auto until = Clock::now() + timeout;
  std::unique_lock<std::mutex> l(state_->mu);
  State* s = state_.get();
  for (;;) {
    if (!s->deferred.empty()) {
      RunDeferred(l);
      continue;
    }
    if (s->remaining <= 0) return s->status;
    if (s->lead != nullptr && s->leader_fd < 0) {
      LeadOnce(l, until);
      if (s->remaining > 0 && s->deferred.empty() && Clock::now() >= until) break;
      continue;
    }
    if (!s->cv.wait_until(l, until, [s]() REQUIRES(s->mu) {
          // A leader that left without the handle done: another waiter takes over.
          return s->remaining <= 0 || !s->deferred.empty() || (s->lead != nullptr && s->leader_fd < 0);
        })) {
      break;
    }
  }
  return Status::TimedOut("request still in flight after " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                          " ms");
}

void Handle::LeadOnce(std::unique_lock<std::mutex>& l, Clock::time_point until) const {
  State* s = state_.get();
  const int fd = ThreadWakeFd();
  if (fd < 0) {  // no eventfd (out of fds): wait as a follower
    s->lead = nullptr;
    return;
  }
  std::shared_ptr<const Leader> lead = s->lead;
  s->leader_fd = fd;
  l.unlock();
  const bool more = (*lead)(until, fd);
  l.lock();
  s->leader_fd = -1;
  if (!more) s->lead = nullptr;
  s->cv.notify_all();  // followers: one of them may lead now
}

void Handle::WakeLeader(State* s) {
  if (s->leader_fd < 0 || s->leader_fd == tl_wake.fd) return;
  const uint64_t one = 1;
  ssize_t n = write(s->leader_fd, &one, sizeof(one));
  (void)n;
}

void Handle::SetLeader(std::shared_ptr<const Leader> lead) const {
  std::lock_guard<std::mutex> l(state_->mu);
  state_->lead = std::move(lead);
}

void Handle::RunDeferred(std::unique_lock<std::mutex>& l) const {
  std::vector<std::function<Status()>> run = std::move(state_->deferred);
  state_->deferred.clear();
  l.unlock();
  std::vector<Status> done;
  done.reserve(run.size());
  for (auto& f : run) done.push_back(f());
  run.clear();  // what the closures hold (a reply's shared-memory slot) goes before the parts complete
  l.lock();
  bool last = false;
  for (const Status& st : done) last = CompleteLocked(state_.get(), st) || last;
  if (last) state_->cv.notify_all();  // other threads may wait on this handle too
}

bool Handle::CompleteLocked(State* s, const Status& status) {
  if (s->remaining <= 0) return false;
  if (!status.ok() && s->status.ok()) s->status = status;
  if (--s->remaining != 0) return false;
  WakeLeader(s);
  return true;
}

// Both below notify after unlocking: a waiter woken while the lock is still held runs on
// the other core, finds the lock taken and sleeps on it again, so each completion cost a
// second futex wait and wake (two more context switches) per request (docs/benchmarks.md).
// The State outlives the notify: this Handle holds a reference to it.
void Handle::CompletePart(const Status& status) const {
  bool last;
  {
    std::lock_guard<std::mutex> l(state_->mu);
    last = CompleteLocked(state_.get(), status);
  }
  if (last) state_->cv.notify_all();
}

void Handle::DeferPart(std::function<Status()> finish) const {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->deferred.push_back(std::move(finish));
    WakeLeader(state_.get());
  }
  state_->cv.notify_all();
}

}  // namespace tessera::worker
