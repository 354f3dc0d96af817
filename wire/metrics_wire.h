// Metrics on the wire: process metrics (common/metrics_registry.h) ride on heartbeats
// to the coordinator, and the coordinator returns each member's latest in JobStatus.
//
// MetricsReporter decides when a heartbeat carries a snapshot (once per interval, so
// the cost is one snapshot per second, not per step) and adds what every process
// reports (resident memory). SamplesFromWire validates what arrives: names must be
// [a-z0-9_], at most 64 characters, values finite, at most kMaxSamples per message;
// anything else is dropped (and counted), never trusted.
//
// Threading: MetricsReporter belongs to the thread that sends heartbeats (a reactor
// thread); the functions are thread-compatible.
#pragma once

#include <functional>
#include <vector>

#include "common/clock.h"
#include "common/metrics_registry.h"
#include "wire/tessera.capnp.h"

namespace tessera::wire {

inline constexpr size_t kMaxMetricSamples = 2048;
inline constexpr Duration kMetricsReportInterval = std::chrono::seconds(1);

void SamplesToWire(const std::vector<metrics::Sample>& samples,
                   ::capnp::List<capnp::MetricSample>::Builder out);
// Drops invalid samples; `*dropped` (optional) counts them.
std::vector<metrics::Sample> SamplesFromWire(::capnp::List<capnp::MetricSample>::Reader in,
                                             size_t* dropped = nullptr);
bool ValidMetricName(const std::string& name);
// A table label's value: "" (none) or 1..128 of [A-Za-z0-9_.:/-] (nothing to escape in
// the exposition, no label injection).
bool ValidTableLabel(const std::string& table);

class MetricsReporter {
 public:
  // `extra` adds role-specific values read at snapshot time (may be empty).
  explicit MetricsReporter(std::function<void(std::vector<metrics::Sample>&)> extra = {},
                           Duration interval = kMetricsReportInterval)
      : extra_(std::move(extra)), interval_(interval) {}

  // Attaches a snapshot of the global registry (plus extra and rss_bytes) to `hb` when
  // `interval` has passed since the last one (the first call always attaches).
  void MaybeAttach(capnp::Heartbeat::Builder hb, Clock::time_point now);

 private:
  std::function<void(std::vector<metrics::Sample>&)> extra_;
  Duration interval_;
  bool sent_ = false;
  Clock::time_point last_{};
};

}  // namespace tessera::wire
