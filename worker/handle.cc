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
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->remaining <= 0;
}

Status Handle::Wait(Duration timeout) const {
  std::unique_lock<std::mutex> l(state_->mu);
  State* s = state_.get();
  if (!s->cv.wait_for(l, timeout, [s]() REQUIRES(s->mu) { return s->remaining <= 0; })) {
    return Status::TimedOut("request still in flight after " +
                            std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                            " ms");
  }
  return s->status;
}

void Handle::CompletePart(const Status& status) const {
  std::lock_guard<std::mutex> l(state_->mu);
  if (state_->remaining <= 0) return;
  if (!status.ok() && state_->status.ok()) state_->status = status;
  if (--state_->remaining == 0) state_->cv.notify_all();
}

}  // namespace tessera::worker
