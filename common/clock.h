// Time. Every timeout in Tessera is measured on the monotonic clock, so a jump of the
// wall clock (NTP, libfaketime) changes no deadline.
#pragma once

#include <chrono>
#include <cstdint>

namespace tessera {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

// A point in time after which a bounded wait gives up.
class Deadline {
 public:
  explicit Deadline(Duration budget) : at_(Clock::now() + budget) {}
  static Deadline FromMillis(int64_t ms) { return Deadline(std::chrono::milliseconds(ms)); }
  bool Expired() const { return Clock::now() >= at_; }
  // Milliseconds left, at least 0 (for zmq_poll).
  int64_t RemainingMillis() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - Clock::now()).count();
    return left > 0 ? left : 0;
  }
  Clock::time_point at() const { return at_; }

 private:
  Clock::time_point at_;
};

}  // namespace tessera
