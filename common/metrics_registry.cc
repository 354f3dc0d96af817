#include "common/metrics_registry.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tessera::metrics {

int Latency::BucketOf(double seconds) {
  const double us = seconds * 1e6;
  if (!(us > 1.0)) return 0;
  const int b = static_cast<int>(std::ceil(std::log2(us) * kBucketsPerOctave));
  return std::clamp(b, 0, kNumBuckets - 1);
}

double Latency::BucketUpperSeconds(int b) {
  return std::exp2(static_cast<double>(b) / kBucketsPerOctave) * 1e-6;
}

void Latency::Record(double seconds) {
  if (!(seconds >= 0)) seconds = 0;  // NaN or a clock step backwards
  buckets_[BucketOf(seconds)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

std::pair<double, double> Latency::TakeWindowQuantiles() {
  uint64_t counts[kNumBuckets];
  uint64_t total = 0;
  for (int b = 0; b < kNumBuckets; ++b) {
    counts[b] = buckets_[b].exchange(0, std::memory_order_relaxed);
    total += counts[b];
  }
  if (total == 0) return {last_p50_, last_p99_};
  auto at = [&](double q) {
    // The smallest bucket whose cumulative count reaches ceil(q * total).
    const auto need = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
    uint64_t seen = 0;
    for (int b = 0; b < kNumBuckets; ++b) {
      seen += counts[b];
      if (seen >= need && seen > 0) return BucketUpperSeconds(b);
    }
    return BucketUpperSeconds(kNumBuckets - 1);
  };
  last_p50_ = at(0.5);
  last_p99_ = at(0.99);
  return {last_p50_, last_p99_};
}

namespace {

template <typename T>
T& GetOrCreate(std::map<std::pair<std::string, int>, std::unique_ptr<T>>& m, const std::string& name, int peer) {
  auto& slot = m[{name, peer}];
  if (!slot) slot = std::make_unique<T>();
  return *slot;
}

}  // namespace

Counter& Registry::GetCounter(const std::string& name, int peer_rank) {
  std::lock_guard<std::mutex> l(mu_);
  return GetOrCreate(counters_, name, peer_rank);
}

Gauge& Registry::GetGauge(const std::string& name, int peer_rank) {
  std::lock_guard<std::mutex> l(mu_);
  return GetOrCreate(gauges_, name, peer_rank);
}

Latency& Registry::GetLatency(const std::string& name, int peer_rank) {
  std::lock_guard<std::mutex> l(mu_);
  return GetOrCreate(latencies_, name, peer_rank);
}

std::vector<Sample> Registry::Snapshot() {
  std::vector<Sample> out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [k, c] : counters_) out.push_back({k.first, Kind::kCounter, static_cast<double>(c->value()), 0, k.second});
  for (const auto& [k, g] : gauges_) out.push_back({k.first, Kind::kGauge, g->value(), 0, k.second});
  for (const auto& [k, h] : latencies_) {
    auto [p50, p99] = h->TakeWindowQuantiles();
    if (p50 >= 0) {
      out.push_back({k.first, Kind::kQuantile, p50, 0.5, k.second});
      out.push_back({k.first, Kind::kQuantile, p99, 0.99, k.second});
    }
    out.push_back({k.first + "_count", Kind::kCounter, static_cast<double>(h->count()), 0, k.second});
    out.push_back({k.first + "_sum", Kind::kCounter, h->sum_seconds(), 0, k.second});
  }
  std::stable_sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) {
    return std::tie(a.name, a.peer_rank) < std::tie(b.name, b.peer_rank);
  });
  return out;
}

Registry& Global() {
  static Registry* r = new Registry();  // never destroyed: threads may report during exit
  return *r;
}

uint64_t ReadRssBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  return resident * static_cast<uint64_t>(page > 0 ? page : 4096);
}

}  // namespace tessera::metrics
