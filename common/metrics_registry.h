// Process-wide metrics: counters, gauges and latency summaries that hot paths update
// without locks, and that a reporter snapshots about once a second (the heartbeat
// carries the snapshot to the coordinator: coordinator/metrics_store.h,
// docs/metrics.md).
//
// Names carry no prefix and no role ("steps_total", "request_seconds"); the coordinator
// adds "tessera_" and the role/rank labels. A value about one server of a worker's
// (round-trip time to server rank 2) carries that server's rank as `peer_rank`.
//
// Latency summaries keep log-spaced buckets (4 per power of two from 1 µs to ~70 min),
// so a reported quantile is the upper edge of its bucket: at most 19% above the true
// value. Quantiles cover the window since the previous snapshot; a window with no
// observation repeats the previous window's quantiles (a scrape between two quiet
// seconds still shows the last known latency).
//
// Threading: Counter/Gauge/Latency methods are lock-free and callable from any thread.
// Registry::Get* takes a mutex (call sites keep the returned reference; entries live
// as long as the registry). Snapshot may be called from any thread, but quantile
// windows assume one snapshotting caller (the process's heartbeat thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/thread_annotations.h"

namespace tessera::metrics {

enum class Kind : uint8_t { kCounter = 0, kGauge = 1, kQuantile = 2 };

struct Sample {
  std::string name;
  Kind kind = Kind::kGauge;
  double value = 0;
  double quantile = 0;  // kQuantile only
  int peer_rank = -1;   // -1: about this process as a whole
  std::string table = {};  // a sparse table's name (label table="..."); "" for none
};

class Counter {
 public:
  void Add(uint64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(double v) { v_.store(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Latency {
 public:
  static constexpr int kBucketsPerOctave = 4;
  static constexpr int kNumBuckets = 32 * kBucketsPerOctave;  // 1 µs .. 2^32 µs

  void Record(double seconds);
  // Everything recorded so far (never reset).
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_seconds() const { return static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9; }
  // p50 and p99 of the window since the last call (see the file comment); {-1, -1}
  // before anything was recorded.
  std::pair<double, double> TakeWindowQuantiles();
  // Upper edge, in seconds, of bucket `b` (exposed for tests).
  static double BucketUpperSeconds(int b);
  static int BucketOf(double seconds);

 private:
  std::atomic<uint64_t> buckets_[kNumBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  double last_p50_ = -1, last_p99_ = -1;  // the snapshotting thread only
};

// Records the seconds from construction to destruction into `latency`.
class ScopedLatency {
 public:
  explicit ScopedLatency(Latency& latency) : latency_(latency), start_(std::chrono::steady_clock::now()) {}
  ~ScopedLatency() {
    latency_.Record(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ScopedLatency(const ScopedLatency&) = delete;
  ScopedLatency& operator=(const ScopedLatency&) = delete;

 private:
  Latency& latency_;
  const std::chrono::steady_clock::time_point start_;
};

class Registry {
 public:
  Counter& GetCounter(const std::string& name, int peer_rank = -1);
  Gauge& GetGauge(const std::string& name, int peer_rank = -1);
  Latency& GetLatency(const std::string& name, int peer_rank = -1);

  // Counters and gauges as they are; each latency as <name>{quantile 0.5, 0.99}
  // (kQuantile), <name>_count and <name>_sum (kCounter). Ordered by name, then peer.
  std::vector<Sample> Snapshot();

 private:
  using Key = std::pair<std::string, int>;
  std::mutex mu_;
  std::map<Key, std::unique_ptr<Counter>> counters_ GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<Gauge>> gauges_ GUARDED_BY(mu_);
  std::map<Key, std::unique_ptr<Latency>> latencies_ GUARDED_BY(mu_);
};

// The process's registry (one role per process; tests that run several roles in one
// process share it).
Registry& Global();

// Resident set size of this process from /proc/self/statm, in bytes; 0 when unreadable.
uint64_t ReadRssBytes();

}  // namespace tessera::metrics
