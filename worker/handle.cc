#include "worker/handle.h"

namespace tessera::worker {

Handle::Handle(Status status) : state_(std::make_shared<State>()) {
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
    if (!s->cv.wait_until(l, until, [s]() REQUIRES(s->mu) { return s->remaining <= 0 || !s->deferred.empty(); })) {
      return Status::TimedOut(
          "request still in flight after " +
          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
    }
  }
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
  return --s->remaining == 0;
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
  }
  state_->cv.notify_all();
}

}  // namespace tessera::worker
