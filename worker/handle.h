// Handle: completion of one asynchronous client request, which may have gone to several
// servers in parallel. Like c10d's Work, minus exceptions: Wait() returns the first
// error of any part, or OK once every part is done.
//
// Thread safety: Handle is a cheap shared reference; IsDone/Wait may be called from any
// thread, any number of times. Parts are completed by the client's reactor thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

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

  bool IsDone() const;
  // Blocks until every part completed or `timeout` passed. Returns the first error of
  // any part, TimedOut (the request itself keeps running) or OK.
  Status Wait(Duration timeout = std::chrono::hours(24)) const;

  // Completes one part. The first non-OK status is kept; later ones are dropped.
  void CompletePart(const Status& status) const;

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int remaining GUARDED_BY(mu) = 0;
    Status status GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_;
};

}  // namespace tessera::worker
