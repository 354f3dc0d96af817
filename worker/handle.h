// Handle: completion of one asynchronous client request, which may have gone to several
// servers in parallel. Like c10d's Work, minus exceptions: Wait() returns the first
// error of any part, or OK once every part is done.
//
// Thread safety: Handle is a cheap shared reference; IsDone/Wait may be called from any
// thread, any number of times. Parts are completed by the client's reactor thread, by a
// thread that leads (SetLeader: a waiter reading the sockets itself, completing its own
// and others' parts), or (DeferPart) by the first thread that waits on the handle
// afterwards. One waiter at a time leads; the others sleep on the condvar.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"

namespace tessera::worker {

class Handle {
 public:
  // An already-completed handle carrying `status` (default OK).
  explicit Handle(Status status = Status::OK());

  // A handle waiting for `parts` completions (0 completes at once).
  static Handle Pending(int parts);

  // Runs deferred parts first (see DeferPart), so it may block for as long as they take.
  bool IsDone() const;
  // Blocks until every part completed or `timeout` passed. Returns the first error of
  // any part, TimedOut (the request itself keeps running) or OK. A deferred part runs
  // to its own end (its deadline), even past `timeout`.
  Status Wait(Duration timeout = std::chrono::hours(24)) const;

  // Completes one part. The first non-OK status is kept; later ones are dropped.
  void CompletePart(const Status& status) const;
  // Completes one part by running `finish` on the first thread that calls Wait or
  // IsDone afterwards (a waiter is woken for it), its Status completing the part: a
  // same-host streamed reply's copy-out, which then overlaps the server's update on the
  // waiting thread instead of following it on the reactor plus a wake-up. Not run if
  // nobody ever waits (then nobody reads the result either).
  void DeferPart(std::function<Status()> finish) const;

  // Leader/follower (issue 17): a waiter that finds the handle pending and no other
  // waiter leading calls `lead(until, wake_fd)` instead of sleeping on the condvar: one
  // turn of reading the sockets the replies arrive on (wire::Reactor::Lead), which may
  // complete this handle on the waiting thread itself, without a wake-up. `wake_fd` is
  // the waiting thread's eventfd: whoever else completes the handle (or defers a part)
  // writes it. `lead` returns false when it cannot lead (the client stopped); the handle
  // then waits on the condvar from then on.
  using Leader = std::function<bool(Clock::time_point until, int wake_fd)>;
  void SetLeader(std::shared_ptr<const Leader> lead) const;

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int remaining GUARDED_BY(mu) = 0;
    Status status GUARDED_BY(mu);
    std::vector<std::function<Status()>> deferred GUARDED_BY(mu);
    std::shared_ptr<const Leader> lead GUARDED_BY(mu);
    int leader_fd GUARDED_BY(mu) = -1;  // the leading waiter's eventfd, while it leads
  };
  // A waiter's turn as leader; `l` holds state_->mu, released meanwhile.
  void LeadOnce(std::unique_lock<std::mutex>& l, Clock::time_point until) const;
  // Wakes the leading waiter, unless this thread is it. The fd is written under mu: the
  // leader clears it under mu before it may leave Wait (and its thread close the fd).
  static void WakeLeader(State* s) REQUIRES(s->mu);
  // Runs and completes the deferred parts; `l` holds state_->mu, released meanwhile.
  void RunDeferred(std::unique_lock<std::mutex>& l) const;
  // Returns true when that was the last part (the caller then notifies the waiters).
  static bool CompleteLocked(State* s, const Status& status) REQUIRES(s->mu);
  std::shared_ptr<State> state_;
};

}  // namespace tessera::worker
