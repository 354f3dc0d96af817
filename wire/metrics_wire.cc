#include "wire/metrics_wire.h"

#include <cmath>

namespace tessera::wire {

bool ValidMetricName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return !(name[0] >= '0' && name[0] <= '9');
}

bool ValidTableLabel(const std::string& table) {
  if (table.size() > 128) return false;
  for (char c : table) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == ':' || c == '/' || c == '-')) {
      return false;
    }
  }
  return true;
}

void SamplesToWire(const std::vector<metrics::Sample>& samples, ::capnp::List<capnp::MetricSample>::Builder out) {
  for (unsigned i = 0; i < out.size() && i < samples.size(); ++i) {
    const metrics::Sample& s = samples[i];
    auto o = out[i];
    o.setName(s.name);
    o.setKind(static_cast<capnp::MetricKind>(s.kind));
    o.setValue(s.value);
    o.setQuantile(s.quantile);
    o.setPeerRank(s.peer_rank);
    if (!s.table.empty()) o.setTable(s.table);
  }
}

std::vector<metrics::Sample> SamplesFromWire(::capnp::List<capnp::MetricSample>::Reader in, size_t* dropped) {
  std::vector<metrics::Sample> out;
  size_t bad = 0;
  for (unsigned i = 0; i < in.size(); ++i) {
    if (out.size() >= kMaxMetricSamples) {
      bad += in.size() - i;
      break;
    }
    auto s = in[i];
    std::string name = s.hasName() ? s.getName().cStr() : "";
    std::string table = s.hasTable() ? s.getTable().cStr() : "";
    const auto kind = static_cast<uint16_t>(s.getKind());
    const bool quantile_ok = s.getKind() != capnp::MetricKind::QUANTILE ||
                             (s.getQuantile() > 0 && s.getQuantile() < 1);
    if (!ValidMetricName(name) || kind > 2 || !std::isfinite(s.getValue()) || !quantile_ok ||
        s.getPeerRank() < -1 || !ValidTableLabel(table)) {
      ++bad;
      continue;
    }
    out.push_back({std::move(name), static_cast<metrics::Kind>(kind), s.getValue(),
                   s.getKind() == capnp::MetricKind::QUANTILE ? s.getQuantile() : 0, s.getPeerRank(),
                   std::move(table)});
  }
  if (dropped != nullptr) *dropped = bad;
  return out;
}

void MetricsReporter::MaybeAttach(capnp::Heartbeat::Builder hb, Clock::time_point now) {
  if (sent_ && now - last_ < interval_) return;
  sent_ = true;
  last_ = now;
  std::vector<metrics::Sample> samples = metrics::Global().Snapshot();
  if (extra_) extra_(samples);
  samples.push_back({"rss_bytes", metrics::Kind::kGauge, static_cast<double>(metrics::ReadRssBytes()), 0, -1});
  if (samples.size() > kMaxMetricSamples) samples.resize(kMaxMetricSamples);
  SamplesToWire(samples, hb.initMetrics(static_cast<unsigned>(samples.size())));
}

}  // namespace tessera::wire
