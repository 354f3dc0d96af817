// What a worker's Client reports (docs/metrics.md): steps, samples, loss, requests in
// flight and the round trip to each server, plus the byte counters of ClientStats. The
// values live in the process registry (common/metrics_registry.h); the reporter attaches
// a snapshot to a heartbeat about once a second.
//
// Threading: the counters, gauges and latencies are updated from any thread; `reporter`
// and the `extra` callback run on the Client's reactor thread (heartbeats).
#pragma once

#include <vector>

#include "common/metrics_registry.h"
#include "wire/metrics_wire.h"

namespace tessera::worker {

struct ClientMetrics {
  explicit ClientMetrics(int num_servers) {
    auto& r = metrics::Global();
    for (int s = 0; s < num_servers; ++s) rtt.push_back(&r.GetLatency("request_rtt_seconds", s + 1));
  }
  metrics::Counter& steps = metrics::Global().GetCounter("steps_total");
  metrics::Counter& samples = metrics::Global().GetCounter("samples_total");
  metrics::Gauge& loss = metrics::Global().GetGauge("loss");
  std::vector<metrics::Latency*> rtt;  // by server index; labelled with the server's rank
  wire::MetricsReporter reporter;      // set by the Client (needs its stats)
};

}  // namespace tessera::worker
