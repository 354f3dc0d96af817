// MetricsStore: the coordinator's latest metrics of every rank, and what is derived
// from them: steps/s and samples/s per rank (from its counters over about the last
// 10 s of reports), the Prometheus text exposition (GET /metrics, coordinator/metrics_http.h)
// and the JSON lines of --metrics_out ({"event":"rank_metrics",...}, docs/metrics.md).
//
// Threading: the coordinator's reactor thread calls Update; the HTTP thread calls
// PrometheusText; the status handler and the JSON writer run on the reactor thread. All
// state is behind one mutex held only while copying or formatting a few KiB, so a
// scrape never stalls the reactor for more than that.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics_registry.h"
#include "common/thread_annotations.h"

namespace tessera {

struct RankMetrics {
  std::string role;   // "coordinator", "server", "worker"
  int rank = -1;
  Clock::time_point updated{};
  std::vector<metrics::Sample> samples;
  double steps_per_sec = 0;    // from steps_total over the rate window
  double samples_per_sec = 0;  // from samples_total
  uint64_t updates = 0;
};

class MetricsStore {
 public:
  // Records the report of `rank`. Rates are measured from the newest report at least
  // kRateWindow older (or the oldest kept, if at least 0.5 s older): a worker whose step
  // takes longer than a heartbeat period then shows a steady rate rather than one that
  // alternates with 0, and back-to-back heartbeats do not make it noisy. Counters that
  // go backwards (a restarted process) restart the window.
  static constexpr std::chrono::seconds kRateWindow{10};
  void Update(const std::string& role, int rank, std::vector<metrics::Sample> samples, Clock::time_point now);

  // A copy of one rank's latest (updates == 0: nothing reported yet).
  RankMetrics Get(int rank) const;
  std::vector<RankMetrics> All() const;

  // Job-level gauges the coordinator itself knows (min/max step, members...), exposed as
  // tessera_job_<name> without role/rank labels.
  void SetJobGauge(const std::string& name, double value);

  // The Prometheus text format (version 0.0.4): every family has # HELP and # TYPE,
  // names are tessera_<name>, every sample is labelled role and rank (and server for a
  // worker's per-server values); rates are tessera_steps_per_second and
  // tessera_samples_per_second.
  std::string PrometheusText() const;

  // {"event":"rank_metrics","role":"server","rank":1,"time_s":..., ...}, one per rank
  // updated since the previous call, without newlines. `since_start_s` is stamped as
  // time_s (seconds since the coordinator started).
  std::vector<std::string> TakeJsonLines(double since_start_s);

  // What a metric means (docs/metrics.md); "" for a name it does not know.
  static const char* Help(const std::string& name);

 private:
  struct Entry {
    RankMetrics latest;
    // Earlier reports' counters, oldest first; the front is what rates are measured from.
    struct Point {
      Clock::time_point time;
      double steps, samples;
    };
    std::deque<Point> history;
    bool written = true;  // in the JSON lines since its last update
  };
  mutable std::mutex mu_;
  std::map<int, Entry> ranks_ GUARDED_BY(mu_);
  std::map<std::string, double> job_ GUARDED_BY(mu_);
};

// The value of counter/gauge `name` (peer -1) in `samples`, or `fallback`.
double FindSample(const std::vector<metrics::Sample>& samples, const std::string& name, double fallback = 0);

}  // namespace tessera
