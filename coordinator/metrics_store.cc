#include "coordinator/metrics_store.h"

#include <cmath>
#include <cstdio>
#include <set>

namespace tessera {

namespace {

struct HelpEntry {
  const char* name;
  const char* help;
};

// Keep in step with docs/metrics.md.
constexpr HelpEntry kHelp[] = {
    {"steps_total", "Training steps this worker completed"},
    {"samples_total", "Training examples this worker processed"},
    {"loss", "This worker's loss of its latest batch"},
    {"bytes_pushed_total", "Payload bytes of gradients this worker pushed (label server: to that server)"},
    {"bytes_pulled_total", "Payload bytes of values this worker pulled (label server: from that server)"},
    {"bytes_allreduced_total", "Gradient bytes (f32, before --compress) this worker all-reduced (--sync=allreduce|hybrid)"},
    {"requests_inflight", "Data-plane requests this worker has sent and not had answered"},
    {"request_rtt_seconds", "Round trip of this worker's data-plane requests to a server (label server), over the last reporting window"},
    {"request_seconds", "Time this server spent handling one data-plane request, over the last reporting window"},
    {"requests_total", "Data-plane requests this server handled"},
    {"server_bytes_in_total", "Payload bytes this server received in requests (gradients, sparse keys)"},
    {"server_bytes_out_total", "Payload bytes this server sent in pull replies"},
    {"parked_requests", "Pulls this server holds until their step's update is applied (its queue)"},
    {"optimizer_seconds", "Time this server spent applying one optimizer update (one chunk or sparse batch): quantiles over the last window, _sum and _count since start"},
    {"checkpoint_write_seconds", "Duration of this server's latest checkpoint write (background)"},
    {"checkpoint_snapshot_seconds", "Time this server's reactor stood still to snapshot for its latest checkpoint"},
    {"checkpoint_bytes_total", "Bytes this server wrote to checkpoints"},
    {"checkpoints_total", "Checkpoints this server wrote"},
    {"rss_bytes", "Resident memory of the process (/proc/self/statm)"},
    {"steps_per_second", "Steps per second of this worker over its reports of about the last 10 s"},
    {"samples_per_second", "Examples per second of this worker over its reports of about the last 10 s"},
    {"metrics_age_seconds", "Seconds since this rank's latest metrics report"},
    {"job_min_step", "Smallest step any worker reported (-1: none yet)"},
    {"job_max_step", "Largest step any worker reported (-1: none yet)"},
    {"job_last_checkpoint_step", "Step of the newest committed checkpoint (-1: none)"},
    {"job_members_registered", "Servers and workers registered with the coordinator"},
    {"job_slowest_worker_rank", "Rank of the worker with the smallest step (-1: none)"},
};

std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.9g", v);
  }
  return buf;
}

std::string QuantileSuffix(double q) { return q == 0.5 ? "_p50" : q == 0.99 ? "_p99" : "_q" + Num(q * 100); }

}  // namespace

double FindSample(const std::vector<metrics::Sample>& samples, const std::string& name, double fallback) {
  for (const auto& s : samples) {
    if (s.name == name && s.peer_rank == -1 && s.kind != metrics::Kind::kQuantile) return s.value;
  }
  return fallback;
}

const char* MetricsStore::Help(const std::string& name) {
  for (const auto& h : kHelp) {
    if (name == h.name) return h.help;
  }
  return "";
}

void MetricsStore::Update(const std::string& role, int rank, std::vector<metrics::Sample> samples,
                          Clock::time_point now) {
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = ranks_[rank];
  const double steps = FindSample(samples, "steps_total", -1);
  const double ex = FindSample(samples, "samples_total", -1);
  auto& h = e.history;
  if (steps < 0 || (!h.empty() && (steps < h.back().steps || ex < h.back().samples))) {
    h.clear();
    e.latest.steps_per_sec = e.latest.samples_per_sec = 0;
  }
  if (steps >= 0) {
    // Drop points while the next one is still at least a window old: the front stays
    // the newest report that covers the whole window.
    while (h.size() >= 2 && now - h[1].time >= kRateWindow) h.pop_front();
    if (!h.empty()) {
      const double dt = std::chrono::duration<double>(now - h.front().time).count();
      if (dt >= 0.5) {
        e.latest.steps_per_sec = (steps - h.front().steps) / dt;
        e.latest.samples_per_sec = (ex - h.front().samples) / dt;
      }
    }
    h.push_back({now, steps, ex});
  }
  e.latest.role = role;
  e.latest.rank = rank;
  e.latest.updated = now;
  e.latest.samples = std::move(samples);
  ++e.latest.updates;
  e.written = false;
}

RankMetrics MetricsStore::Get(int rank) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = ranks_.find(rank);
  return it == ranks_.end() ? RankMetrics{} : it->second.latest;
}

std::vector<RankMetrics> MetricsStore::All() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<RankMetrics> out;
  for (const auto& [rank, e] : ranks_) out.push_back(e.latest);
  return out;
}

void MetricsStore::SetJobGauge(const std::string& name, double value) {
  std::lock_guard<std::mutex> l(mu_);
  job_[name] = value;
}

std::string MetricsStore::PrometheusText() const {
  struct Family {
    std::string type;  // counter, gauge, summary
    std::vector<std::string> lines;
  };
  std::map<std::string, Family> families;  // by name without prefix
  const auto now = Clock::now();
  std::lock_guard<std::mutex> l(mu_);
  std::set<std::string> summaries;
  for (const auto& [rank, e] : ranks_) {
    for (const auto& s : e.latest.samples) {
      if (s.kind == metrics::Kind::kQuantile) summaries.insert(s.name);
    }
  }
  auto family_of = [&](const std::string& name, metrics::Kind kind) -> std::pair<std::string, std::string> {
    for (const char* suffix : {"_count", "_sum"}) {
      const std::string sfx = suffix;
      if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
        std::string base = name.substr(0, name.size() - sfx.size());
        if (summaries.count(base)) return {base, "summary"};
      }
    }
    if (kind == metrics::Kind::kQuantile) return {name, "summary"};
    return {name, kind == metrics::Kind::kCounter ? "counter" : "gauge"};
  };
  for (const auto& [rank, e] : ranks_) {
    const RankMetrics& m = e.latest;
    const std::string base = "role=\"" + m.role + "\",rank=\"" + std::to_string(rank) + "\"";
    for (const auto& s : m.samples) {
      auto [fam, type] = family_of(s.name, s.kind);
      Family& f = families[fam];
      if (f.type.empty()) f.type = type;
      if (f.type != type) continue;  // a name reported with two kinds: keep the first
      std::string labels = base;
      if (s.peer_rank >= 0) labels += ",server=\"" + std::to_string(s.peer_rank) + "\"";
      if (!s.table.empty()) labels += ",table=\"" + s.table + "\"";  // wire::ValidTableLabel: nothing to escape
      if (s.kind == metrics::Kind::kQuantile) labels += ",quantile=\"" + Num(s.quantile) + "\"";
      f.lines.push_back("tessera_" + s.name + "{" + labels + "} " + Num(s.value));
    }
    if (FindSample(m.samples, "steps_total", -1) >= 0) {
      auto& sps = families["steps_per_second"];
      sps.type = "gauge";
      sps.lines.push_back("tessera_steps_per_second{" + base + "} " + Num(m.steps_per_sec));
      auto& xps = families["samples_per_second"];
      xps.type = "gauge";
      xps.lines.push_back("tessera_samples_per_second{" + base + "} " + Num(m.samples_per_sec));
    }
    auto& age = families["metrics_age_seconds"];
    age.type = "gauge";
    age.lines.push_back("tessera_metrics_age_seconds{" + base + "} " +
                        Num(std::chrono::duration<double>(now - m.updated).count()));
  }
  for (const auto& [name, v] : job_) {
    Family& f = families["job_" + name];
    f.type = "gauge";
    f.lines.push_back("tessera_job_" + name + " " + Num(v));
  }
  std::string out;
  for (const auto& [name, f] : families) {
    const char* help = Help(name);
    out += "# HELP tessera_" + name + " " + (*help ? help : "Tessera metric " + name) + "\n";
    out += "# TYPE tessera_" + name + " " + f.type + "\n";
    for (const auto& line : f.lines) out += line + "\n";
  }
  return out;
}

std::vector<std::string> MetricsStore::TakeJsonLines(double since_start_s) {
  std::vector<std::string> out;
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [rank, e] : ranks_) {
    if (e.written) continue;
    e.written = true;
    const RankMetrics& m = e.latest;
    std::string j = "{\"event\":\"rank_metrics\",\"role\":\"" + m.role + "\",\"rank\":" + std::to_string(rank) +
                    ",\"time_s\":" + Num(std::round(since_start_s * 1000) / 1000);
    if (FindSample(m.samples, "steps_total", -1) >= 0) {
      j += ",\"steps_per_sec\":" + Num(std::round(m.steps_per_sec * 100) / 100);
      j += ",\"samples_per_sec\":" + Num(std::round(m.samples_per_sec * 10) / 10);
    }
    std::map<int, std::string> per_peer;
    for (const auto& s : m.samples) {
      std::string key = s.name + (s.kind == metrics::Kind::kQuantile ? QuantileSuffix(s.quantile) : "") +
                        (s.table.empty() ? "" : "[" + s.table + "]");
      std::string kv = "\"" + key + "\":" + (std::isfinite(s.value) ? Num(s.value) : "null");
      if (s.peer_rank < 0) {
        j += "," + kv;
      } else {
        std::string& p = per_peer[s.peer_rank];
        p += (p.empty() ? "" : ",") + kv;
      }
    }
    if (!per_peer.empty()) {
      j += ",\"servers\":{";
      bool first = true;
      for (const auto& [peer, kvs] : per_peer) {
        j += (first ? "\"" : ",\"") + std::to_string(peer) + "\":{" + kvs + "}";
        first = false;
      }
      j += "}";
    }
    out.push_back(j + "}");
  }
  return out;
}

}  // namespace tessera
